"""Helpers of the local-evidence attack tests (issue 12.6-12.8): a kiosk whose device is
registered on a real reference platform, and the insider's sqlite3 shell."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from hardware.simulated import SimulatedReader
from kiosk.checkin.rules import CheckinRequest, CheckinResult, Method
from kiosk.config import ReaderConfig, parse_config
from kiosk.runtime.daemon import build_services, open_store
from kiosk.runtime.services import KioskServices
from models.chain import link_hash
from models.roster import apply_rows
from sync.client import PlatformClient
from sync.signing import DeviceKey, record_signing_key
from sync.uploader import Uploader
from sync.wire import BatchResult
from tests.support.config import BASE_CONFIG
from tests.support.platform import Platform
from tests.support.roster import Clock, elder_row

CHAINED = (
    "record_id", "seq", "device_id", "elder_id", "service", "slot", "service_date",
    "checked_in_at", "method", "card_uid", "reader", "distance", "margin", "liveness", "flags",
    "caregiver_id", "reason",
)  # fmt: skip


@dataclass
class Terminal:
    services: KioskServices
    clock: Clock
    key: DeviceKey
    device_id: str
    token: str | None
    db_path: Path

    def tap(self, n: int) -> CheckinResult:
        return self.services.checkin.check_in(
            CheckinRequest(Method.CARD, card_uid=f"{0xA0000000 + n:08X}")
        )

    def uploader_apply(self, result: BatchResult, ids: list[str]) -> None:
        """Store a platform answer exactly as the uploader does after a batch."""
        up = Uploader(self.services.store, None, self.key, self.device_id)  # type: ignore[arg-type]
        up._apply(result, set(ids), seqs=(1, 1))

    def uploader(self, platform: Platform) -> Uploader:
        assert self.token is not None
        client = PlatformClient(platform.url, self.token)
        return Uploader(self.services.store, client, self.key, self.device_id)


def make_terminal(
    tmp_path: Path, platform: Platform | None = None, platform_key: str | None = None
) -> Terminal:
    """A kiosk (in-process services, simulated reader) with 20 elders; registered on
    `platform` under a fresh device id when given; trusting `platform_key` (base64) for
    receipts and checkpoint acks."""
    device_id = "sec-" + uuid.uuid4().hex[:10]
    text = BASE_CONFIG.replace("test-terminal", device_id)
    if platform_key:
        text += f"platform: {{public_key: {platform_key}}}\n"
    config = parse_config(text)
    data = tmp_path / "data"
    store = open_store(data)
    clock = Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=elder_tz()))
    services = build_services(
        config, data, readers=[(ReaderConfig(kind="simulated", name="desk"), SimulatedReader("desk"))],
        store=store, clock=clock,
    )  # fmt: skip
    apply_rows(store, [elder_row(i) for i in range(1, 21)], clock(), source="test")
    key = record_signing_key(data)  # the key the daemon signs with (generated in data/keys)
    token = platform.register(device_id, "pt-" + uuid.uuid4().hex[:8], key) if platform else None
    return Terminal(services, clock, key, device_id, token, store.db_path)


def elder_tz() -> dt.tzinfo:
    from tests.support.roster import TZ

    return TZ


def sqlite3_shell(db: Path, sql: str) -> subprocess.CompletedProcess[str]:
    """What a technician (or a cadre with the box open) can do without any key."""
    return subprocess.run(
        ["sqlite3", str(db)], input=sql, capture_output=True, text=True, timeout=30, check=False
    )


def forged_row_sql(db: Path, elder_id: str, signature: str | None) -> str:
    """SQL appending a correctly chained lunch for `elder_id` after the current head (the hash
    computed exactly as the daemon would, which needs no key), with `signature`."""
    out = sqlite3_shell(
        db, "SELECT seq, hash, device_id FROM meal_record ORDER BY seq DESC LIMIT 1;"
    ).stdout.strip()
    seq, prev_hash, device_id = out.split("|")
    day = dt.date(2026, 12, 1)
    fields = {
        "record_id": str(uuid.uuid4()),
        "seq": int(seq) + 1,
        "device_id": device_id,
        "elder_id": elder_id,
        "service": "meal",
        "slot": "lunch",
        "service_date": day,
        "checked_in_at": dt.datetime(2026, 12, 1, 11, 40, tzinfo=elder_tz()),
        "method": "card",
        "card_uid": None,
        "reader": "desk",
        "distance": None,
        "margin": None,
        "liveness": None,
        "flags": "",
        "caregiver_id": None,
        "reason": None,
    }
    record_hash = link_hash(prev_hash, fields)
    sig = "NULL" if signature is None else f"'{signature}'"
    at = fields["checked_in_at"].isoformat(timespec="microseconds")  # type: ignore[union-attr]
    return (
        "BEGIN;\n"
        "INSERT INTO meal_record (record_id, seq, device_id, elder_id, service, slot, "
        "service_date, checked_in_at, method, reader, flags, prev_hash, hash, signature) VALUES "
        f"('{fields['record_id']}', {fields['seq']}, '{device_id}', '{elder_id}', 'meal', "
        f"'lunch', '{day.isoformat()}', '{at}', 'card', 'desk', '', '{prev_hash}', "
        f"'{record_hash}', {sig});\n"
        f"INSERT INTO outbox (record_id, attempts) VALUES ('{fields['record_id']}', 0);\n"
        "COMMIT;\n"
    )
