"""Lunch-rush load and a time-compressed day, on the real daemon with two simulated readers.

1. Rush: 200 elders (plus 10 % who tap twice) through two readers at once, as fast as HTTP
   allows (the real rush is ~10 minutes; here seconds), then card bursts of 20 taps/s. Every tap
   must produce exactly one event; every elder exactly one record.
2. Compressed day: the daemon uploads to the reference platform (real sync jobs), while the test
   refreshes the roster, keeps tapping, and runs the nightly maintenance (backup, full integrity
   check, WAL checkpoint) from a second process, as the systemd timer does. Resident memory and
   open file descriptors of the daemon are sampled: no growth trend; nothing lost; in the end
   the platform holds every record exactly once.

Tap latency (POST -> event on /api/events) is reported in the figures, never asserted.
The camera is left out: face check-in needs the dlib models and a video, and has its own suite.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.ops.storage import nightly
from models.db import Store
from models.roster import apply_rows
from sync.signing import generate_device_key
from tests.faults.harness import (
    KioskProc,
    Witness,
    check_screen_against_store,
    check_store,
    percentile,
    rss_and_fds,
    size,
)
from tests.support.config import noon_zone
from tests.support.roster import elder_row
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

TWO_READERS = "readers: [{kind: simulated, name: desk}, {kind: simulated, name: door}]\n"
RUSH_ELDERS = 200
BURST_S = size(3, 30)
BURST_RATE = 20
DAY_ROUNDS = size(12, 240)


class Tapper:
    """Taps through the HTTP API and matches each tap to its event for the latency."""

    def __init__(self, kiosk: KioskProc, witness: Witness) -> None:
        self.kiosk, self.witness = kiosk, witness
        self.sent: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def tap(self, client: httpx.Client, uid: str, reader: str) -> None:
        with self.lock:
            self.sent.append((uid, time.monotonic()))
        self.kiosk.tap(client, uid, reader)

    def latencies_ms(self) -> list[float]:
        events = self.witness.snapshot()
        times = list(self.witness.received_at)
        pending: dict[str, list[float]] = {}
        for uid, at in self.sent:
            pending.setdefault(uid, []).append(at)
        out = []
        for event, got in zip(events, times, strict=False):
            queue = pending.get(event.get("card_uid") or "")
            if queue:
                out.append((got - queue.pop(0)) * 1000)
        return out


@pytest.mark.timeout(size(300, 1800))
def test_lunch_rush_two_readers_and_bursts(tmp_path: Path, figures: dict[str, Any]) -> None:
    kiosk = KioskProc(tmp_path, readers=TWO_READERS)
    roster = [elder_row(i) for i in range(1, RUSH_ELDERS + BURST_S * BURST_RATE + 1)]
    kiosk.seed(roster)
    kiosk.start()
    try:
        witness = Witness(kiosk.base)
        witness.wait_ready()
        tapper = Tapper(kiosk, witness)
        rng = random.Random(7)
        rush = [r.card_uid for r in roster[:RUSH_ELDERS]]
        rush += rng.sample(rush, RUSH_ELDERS // 10)  # some tap twice: duplicates
        rng.shuffle(rush)
        lanes = [rush[0::2], rush[1::2]]

        def lane(uids: list[str], reader: str) -> None:
            with httpx.Client() as client:
                for uid in uids:
                    tapper.tap(client, uid, reader)

        started = time.monotonic()
        threads = [
            threading.Thread(target=lane, args=(uids, name))
            for uids, name in zip(lanes, ("desk", "door"), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: len(witness.snapshot()) >= len(rush), "every rush tap's event", 60)
        rush_s = time.monotonic() - started

        # Bursts: 20 taps a second, paced, fresh cards and a few repeats.
        burst_cards = [r.card_uid for r in roster[RUSH_ELDERS:]]
        rush_tapper, tapper = tapper, Tapper(kiosk, witness)  # latency of each phase apart
        with httpx.Client() as client:
            t0 = time.monotonic()
            for i, uid in enumerate(burst_cards):
                delay = t0 + i / BURST_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                tapper.tap(client, uid, "desk" if i % 2 else "door")
        total = len(rush) + len(burst_cards)
        wait_until(lambda: len(witness.snapshot()) >= total, "every burst tap's event", 60)

        events = witness.snapshot()
        assert len(events) == total, f"{total} taps, {len(events)} events: a tap was lost"
        facts = check_store(kiosk.db_path)
        check_screen_against_store(events, facts)
        by_elder: dict[str, int] = {}
        for rec in facts.records:
            by_elder[rec["elder_id"]] = by_elder.get(rec["elder_id"], 0) + 1
        assert len(by_elder) == len(roster) and set(by_elder.values()) == {1}
        outcomes = [e["outcome"] for e in events]
        assert outcomes.count("accepted") == len(roster)
        assert outcomes.count("duplicate") == RUSH_ELDERS // 10
        assert {e["reader"] for e in events if e.get("reader")} <= {"desk", "door"}
        rush_lat, burst_lat = rush_tapper.latencies_ms(), tapper.latencies_ms()
        figures["load_rush_taps"] = len(rush)
        figures["load_rush_seconds"] = round(rush_s, 2)
        # unpaced: taps queue behind each other, so this is mostly waiting in line
        figures["load_rush_latency_p99_ms"] = round(percentile(rush_lat, 0.99) or 0, 1)
        figures["load_burst_taps"] = len(burst_cards)
        figures["load_burst_latency_p50_ms"] = round(percentile(burst_lat, 0.5) or 0, 1)
        figures["load_burst_latency_p99_ms"] = round(percentile(burst_lat, 0.99) or 0, 1)
        figures["load_lost"] = 0
    finally:
        kiosk.kill()


def trend_ok(samples: list[int], slack: float, absolute: int) -> tuple[bool, str]:
    """No growth trend: the last third's median within `slack` (+ `absolute`) of the first."""
    third = max(1, len(samples) // 3)
    first, last = statistics.median(samples[:third]), statistics.median(samples[-third:])
    return last <= first * (1 + slack) + absolute, f"first third {first}, last third {last}"


@pytest.mark.timeout(size(300, 3600))
def test_compressed_day_uploads_roster_maintenance_no_growth(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    from tests.support.platform import start_platform

    platform = start_platform(f"sqlite:///{tmp_path / 'platform.db'}", tmp_path)
    kiosk = None
    try:
        creds = tmp_path / "creds"
        key = generate_device_key(creds / "device-key")
        device_id = "day-" + uuid.uuid4().hex[:8]
        # The point's zone is the kiosk's site zone (noon now), as the county registers it.
        token = platform.register(device_id, "pt-day", key, noon_zone())
        (creds / "device-token").write_text(token)
        (creds / "device-token").chmod(0o600)  # a readable token is refused
        kiosk = KioskProc(
            tmp_path / "k",
            readers=TWO_READERS,
            extra_config=(
                f"platform: {{url: '{platform.url}', upload_interval_s: 5, "
                f"checkpoint_interval_s: 5, heartbeat_interval_s: 10, "
                f"public_key: '{platform.public_key}'}}\n"
            ),
            env={
                "CREDENTIALS_DIRECTORY": str(creds),
                "KIOSK_FACE_KEY": base64.b64encode(os.urandom(32)).decode(),
            },
        )
        kiosk.config.write_text(
            kiosk.config.read_text().replace(
                "device: {device_id: proc-test}", f"device: {{device_id: {device_id}}}"
            )
        )
        per_round = 20
        roster = [elder_row(i) for i in range(1, DAY_ROUNDS * per_round + 1)]
        kiosk.seed(roster[:per_round])
        kiosk.start()
        assert kiosk.proc is not None
        witness = Witness(kiosk.base)
        witness.wait_ready()
        tapper = Tapper(kiosk, witness)
        rss: list[int] = []
        fds: list[int] = []
        maintenance = 0
        with httpx.Client() as client:
            for n in range(DAY_ROUNDS):
                # Roster refresh (a second process, as `kiosk roster import`): the next elders
                # and the last hundred again (updated in place).
                store = Store(kiosk.db_path)
                apply_rows(
                    store,
                    roster[max(0, (n + 1) * per_round - 100) : (n + 1) * per_round],
                    dt.datetime.now(dt.UTC),
                    source="refresh",
                )
                for i, row in enumerate(roster[n * per_round : (n + 1) * per_round]):
                    tapper.tap(client, row.card_uid, "desk" if i % 2 else "door")
                tapper.tap(client, roster[n * per_round].card_uid, "desk")  # a duplicate
                if n % 4 == 3:  # "nightly" maintenance, compressed
                    report = nightly(store, kiosk.data_dir)
                    assert report.integrity == "ok", report
                    maintenance += 1
                store.close()
                wait_until(
                    lambda n=n: len(witness.snapshot()) >= (n + 1) * (per_round + 1),
                    "the round's events",
                    30,
                )
                r, f = rss_and_fds(kiosk.proc.pid)
                rss.append(r)
                fds.append(f)
        total = DAY_ROUNDS * per_round
        wait_until(
            lambda: platform.records(device_id)["count"] == total,
            "the daemon to upload every record",
            120,
        )
        events = witness.snapshot()
        assert len(events) == DAY_ROUNDS * (per_round + 1), "a tap was lost"
        facts = check_store(kiosk.db_path, all_unsent=False)
        check_screen_against_store(events, facts)
        assert len(facts.records) == total
        remote = platform.records(device_id)
        assert remote["distinct_ids"] == total and remote["broken_links"] == []
        wait_until(
            lambda: all(
                o["uploaded_at"] is not None
                for o in check_store(kiosk.db_path, all_unsent=False).outbox.values()
            ),
            "the outbox to be fully acknowledged",
            60,
        )
        warm = max(2, len(rss) // 6)  # skip warm-up (caches, first uploads)
        ok, why = trend_ok(rss[warm:], 0.25, 8 * 1024 * 1024)
        assert ok, f"resident memory grows: {why}"
        ok, why = trend_ok(fds[warm:], 0.0, 6)
        assert ok, f"open file descriptors grow: {why}"
        lat = tapper.latencies_ms()
        figures["day_rounds"] = DAY_ROUNDS
        figures["day_taps"] = len(tapper.sent)
        figures["day_records_uploaded"] = total
        figures["day_maintenance_runs"] = maintenance
        figures["day_rss_mb_first_last"] = [round(rss[warm] / 2**20, 1), round(rss[-1] / 2**20, 1)]
        figures["day_fds_first_last"] = [fds[warm], fds[-1]]
        figures["day_tap_latency_p99_ms"] = round(percentile(lat, 0.99) or 0, 1)
        figures["day_lost"] = 0
    finally:
        if kiosk is not None:
            kiosk.kill()
        platform.stop()
