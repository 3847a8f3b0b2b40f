"""The safety ledgers ride along with the heartbeat; the platform keeps each entry by its key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.heartbeat import HeartbeatExtras, build_heartbeat
from tests.support.outbox import Kiosk
from tests.support.platform import Platform
from tests.support.roster import TZ

NOW = dt.datetime(2026, 12, 2, 13, 0, tzinfo=TZ)


def ledger(dishes: str) -> dict[str, Any]:
    sampled = NOW.replace(hour=11, minute=20)
    return {
        "food_sample_today": True,
        "inspection_this_week": True,
        "open_problems": 1,
        "food_samples": [
            {
                "service_date": NOW.date(),
                "slot": "lunch",
                "dishes": dishes,
                "sample_kept": True,
                "sampled_at": sampled,
                "stored_until": sampled + dt.timedelta(hours=48),
                "caregiver_id": "C001",
                "note": "",
            }
        ],
        "inspections": [
            {
                "week_start": dt.date(2026, 11, 30),
                "checks": {"building": "ok", "gas": "problem"},
                "problems": "灶台软管老化",
                "fixed": "",
                "caregiver_id": "C001",
                "inspected_at": NOW,
            }
        ],
    }


def test_ledger_entries_reach_the_platform_once_per_key(platform: Platform, kiosk: Kiosk) -> None:
    client = kiosk.client(platform.url)
    for dishes in ("红烧肉、米饭", "红烧肉、青菜、米饭"):  # the second is a correction
        hb = build_heartbeat(
            kiosk.store, kiosk.device_id, NOW, software_version="0.1.0",
            extras=lambda d=dishes: HeartbeatExtras(safety=ledger(d)),
        )  # fmt: skip
        client.heartbeat(hb)
    r = platform.admin("GET", f"/v1/admin/devices/{kiosk.device_id}/safety")
    assert r.status_code == 200, r.text
    entries = {(e["kind"], e["key"]): e for e in r.json()}
    assert set(entries) == {("food_sample", "2026-12-02/lunch"), ("inspection", "2026-11-30")}
    assert entries[("food_sample", "2026-12-02/lunch")]["dishes"] == "红烧肉、青菜、米饭"
    assert entries[("inspection", "2026-11-30")]["checks"]["gas"] == "problem"
    # a heartbeat without the ledgers (an older kiosk) is still accepted
    client.heartbeat(build_heartbeat(kiosk.store, kiosk.device_id, NOW, software_version="0.0.9"))
