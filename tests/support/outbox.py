"""The kiosk side of sync tests: a store with elders and a registered device, and records to
fill its outbox."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.db import Store
from models.records import RecordSigner, append_record
from models.roster import apply_rows
from sync.client import PlatformClient
from sync.signing import DeviceKey, default_key_path, generate_device_key, load_device_key
from sync.uploader import Uploader
from tests.support.roster import TZ, elder_row

ELDERS = 50


@dataclass
class Kiosk:
    store: Store
    key: DeviceKey
    key_path: Path
    device_id: str
    point_id: str
    token: str

    def client(self, url: str, **kwargs: Any) -> PlatformClient:
        return PlatformClient(url, self.token, **kwargs)

    def uploader(self, url: str, batch_size: int = 100, **kwargs: Any) -> Uploader:
        return Uploader(
            self.store, self.client(url, **kwargs), self.key, self.device_id, batch_size=batch_size
        )


def seed_elders(store: Store, n: int = ELDERS) -> None:
    apply_rows(
        store, [elder_row(i) for i in range(1, n + 1)], dt.datetime(2026, 12, 1, tzinfo=TZ), "test"
    )


def store_signer(store: Store) -> RecordSigner:
    """Signs with the device key of the store's data dir (where `kiosk sync` looks), creating
    the key if the test has none yet: the database refuses unsigned records."""
    key_path = default_key_path(store.db_path.parent)
    key = load_device_key(key_path) if key_path.exists() else generate_device_key(key_path)
    return key.sign_record


def add_records(
    store: Store,
    device_id: str,
    n: int,
    start_day: int = 0,
    signer: RecordSigner | None = None,
) -> list[str]:
    """n signed records in one transaction: elder i, one lunch per day, days from 2026-01-01.

    Signed by `signer`, else by the device key of the store's data dir (`store_signer`).
    """
    from sqlalchemy import func, select

    from models.tables import MealRecord

    signer = signer or store_signer(store)
    ids = []
    with store.write() as session:
        base = session.scalar(select(func.count()).select_from(MealRecord)) or 0
        for k in range(base, base + n):
            day = dt.date(2026, 1, 1) + dt.timedelta(days=start_day + k // ELDERS)
            rec = append_record(
                session,
                signer=signer,
                device_id=device_id,
                elder_id=f"E{k % ELDERS + 1:04d}",
                service="meal",
                slot="lunch",
                service_date=day,
                checked_in_at=dt.datetime.combine(day, dt.time(11, 30), tzinfo=TZ),
                method="card",
                card_uid=f"{0xA0000000 + k % ELDERS + 1:08X}",
                reader="desk",
                flags="",
            )
            ids.append(rec.record_id)
    return ids
