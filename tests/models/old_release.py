"""Records as an earlier release wrote them: raw SQL against an old schema (the ORM models
describe the newest schema and cannot insert into an old one)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from models.chain import GENESIS_HASH, link_hash
from models.records import uuid7


def old_release_records(
    db: Path, days: list[int], at: dt.datetime, device_id: str = "d1", elder_id: str = "E1"
) -> list[str]:
    """One lunch per day of 2026-11 in `days`, chained, unsigned, pending; their record ids."""
    ids = []
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT seq, hash FROM meal_record ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
        for day in days:
            seq += 1
            fields = {
                "record_id": uuid7(), "seq": seq, "device_id": device_id, "elder_id": elder_id,
                "service": "meal", "slot": "lunch", "service_date": dt.date(2026, 11, day),
                "checked_in_at": at, "method": "card", "card_uid": None, "reader": None,
                "distance": None, "margin": None, "liveness": None, "flags": "",
                "caregiver_id": None, "reason": None,
            }  # fmt: skip
            record_hash = link_hash(prev, fields)
            conn.execute(
                "INSERT INTO meal_record (record_id, seq, device_id, elder_id, service, slot,"
                " service_date, checked_in_at, method, flags, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, 'meal', 'lunch', ?, ?, 'card', '', ?, ?)",
                (fields["record_id"], seq, device_id, elder_id, f"2026-11-{day:02d}",
                 at.isoformat(timespec="microseconds"), prev, record_hash),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO outbox (record_id, attempts) VALUES (?, 0)", (fields["record_id"],)
            )
            ids.append(str(fields["record_id"]))
            prev = record_hash
    return ids
