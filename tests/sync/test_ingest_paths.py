"""The platform's ingest shortcuts (docs/scale.md, "Ingest"), on SQLite and PostgreSQL: each
must give exactly what the long way gives.

- Claims are first inserted assuming no slot of the batch is held (no lookup); the claims'
  unique index refuses that when a slot is held, and the slots are then looked up: a batch with
  one held slot among fresh ones stores every record, the held one unclaimed and the holder's
  claim marked contested.
- The contiguous mark moves over a hole-free window in one aggregate, and stops at a hole;
  a batch continuing a hole-free history moves it without a query.
- A resent batch is found by its record ids (one array parameter on PostgreSQL): duplicates,
  nothing stored twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from models.chain import GENESIS_HASH, link_hash
from sync.platform.tables import Device, MealClaim
from sync.signing import DeviceKey, generate_device_key
from sync.wire import RecordBatch, WireRecord
from tests.support.platform import Platform
from tests.support.roster import TZ

DAY = dt.date(2026, 11, 3)


class Chain:
    """One device's records, chained and signed as the kiosk makes them."""

    def __init__(self, platform: Platform, key: DeviceKey) -> None:
        self.key = key
        self.device_id = "dev-" + uuid.uuid4().hex[:10]
        self.point_id = "pt-" + uuid.uuid4().hex[:8]
        self.token = platform.register(self.device_id, self.point_id, key)
        self.records: list[WireRecord] = []

    def add(self, elder_id: str, day: dt.date = DAY, slot: str = "lunch") -> WireRecord:
        prev = self.records[-1].hash if self.records else GENESIS_HASH
        fields: dict[str, Any] = {
            "record_id": str(uuid.uuid4()), "seq": len(self.records) + 1,
            "device_id": self.device_id, "elder_id": elder_id, "service": "meal",
            "slot": slot, "service_date": day,
            "checked_in_at": dt.datetime.combine(day, dt.time(11, 30), tzinfo=TZ),
            "method": "card", "card_uid": "04A1B2C3", "reader": "desk", "distance": None,
            "margin": None, "liveness": None, "flags": "", "caregiver_id": None, "reason": None,
        }  # fmt: skip
        digest = link_hash(prev, fields)
        rec = WireRecord(
            **fields, prev_hash=prev, hash=digest, signature=self.key.sign_record(digest)
        )
        self.records.append(rec)
        return rec

    def post(self, platform: Platform, records: list[WireRecord]) -> dict[str, Any]:
        batch = RecordBatch(
            device_id=self.device_id, sent_at=dt.datetime.now(dt.UTC), records=records
        )
        r = httpx.post(
            f"{platform.url}/v1/records",
            content=batch.model_dump_json(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def _claims(platform: Platform, record_ids: list[str]) -> dict[str, MealClaim]:
    engine = create_engine(platform.db_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(MealClaim).where(MealClaim.record_id.in_(record_ids)))
            return {c.record_id: c for c in rows}
    finally:
        engine.dispose()


def _contiguous(platform: Platform, device_id: str) -> int:
    engine = create_engine(platform.db_url)
    try:
        with Session(engine) as session:
            device = session.get(Device, device_id)
            assert device is not None
            return device.contiguous_seq
    finally:
        engine.dispose()


def test_a_held_slot_among_fresh_ones_is_looked_up_and_stored_unclaimed(
    platform: Platform, tmp_path: Path
) -> None:
    here = Chain(platform, generate_device_key(tmp_path / "a" / "device.key"))
    there = Chain(platform, generate_device_key(tmp_path / "b" / "device.key"))
    roaming = "E-" + uuid.uuid4().hex[:8]  # eats at both points on the same day
    held = there.add(roaming)
    assert there.post(platform, [held])["accepted"] == [held.record_id]

    mine = [here.add("E-" + uuid.uuid4().hex[:8]) for _ in range(3)]
    second = here.add(roaming)
    mine.append(second)
    mine.append(here.add("E-" + uuid.uuid4().hex[:8]))
    answer = here.post(platform, mine)
    assert answer["accepted"] == [r.record_id for r in mine]
    assert answer["rejected"] == []

    claims = _claims(platform, [r.record_id for r in [held, *mine]])
    assert len(claims) == 6  # one claim row per stored record
    assert claims[held.record_id].claimed and claims[held.record_id].contested
    assert not claims[second.record_id].claimed
    assert claims[second.record_id].received_at is not None  # ranked by the settlement
    fresh = [r for r in mine if r is not second]
    assert all(claims[r.record_id].claimed for r in fresh)
    assert not any(claims[r.record_id].contested for r in fresh)
    assert all(claims[r.record_id].received_at is None for r in fresh)


def test_a_batch_without_held_slots_claims_every_slot_once(
    platform: Platform, tmp_path: Path
) -> None:
    """Two records of one elder's one slot in a batch: the smaller record id holds it."""
    kiosk = Chain(platform, generate_device_key(tmp_path / "device.key"))
    elder = "E-" + uuid.uuid4().hex[:8]
    twice = [kiosk.add(elder), kiosk.add(elder), kiosk.add(elder, slot="dinner")]
    assert kiosk.post(platform, twice)["accepted"] == [r.record_id for r in twice]
    claims = _claims(platform, [r.record_id for r in twice])
    first, second = sorted(twice[:2], key=lambda r: r.record_id)
    assert claims[first.record_id].claimed and claims[first.record_id].contested
    assert not claims[second.record_id].claimed
    assert claims[twice[2].record_id].claimed and not claims[twice[2].record_id].contested


def test_contiguous_mark_stops_at_a_hole_and_moves_when_it_is_filled(
    platform: Platform, tmp_path: Path
) -> None:
    kiosk = Chain(platform, generate_device_key(tmp_path / "device.key"))
    records = [kiosk.add("E-" + uuid.uuid4().hex[:8]) for _ in range(10)]
    kiosk.post(platform, records[:5])
    assert _contiguous(platform, kiosk.device_id) == 5
    kiosk.post(platform, records[7:])  # seqs 8..10: 6 and 7 missing
    assert _contiguous(platform, kiosk.device_id) == 5
    kiosk.post(platform, records[5:7])
    assert _contiguous(platform, kiosk.device_id) == 10
    # Ten accepted, mark 10 (held_count equals the mark): the next batch moves it
    # without looking at the rows (advance_after_batch), and a hole still stops it.
    more = [kiosk.add("E-" + uuid.uuid4().hex[:8]) for _ in range(4)]
    kiosk.post(platform, more[:2])
    assert _contiguous(platform, kiosk.device_id) == 12
    kiosk.post(platform, more[3:])  # seq 14: 13 missing
    assert _contiguous(platform, kiosk.device_id) == 12
    kiosk.post(platform, more[2:3])
    assert _contiguous(platform, kiosk.device_id) == 14


def test_a_resent_batch_is_all_duplicates(platform: Platform, tmp_path: Path) -> None:
    kiosk = Chain(platform, generate_device_key(tmp_path / "device.key"))
    records = [kiosk.add("E-" + uuid.uuid4().hex[:8]) for _ in range(20)]
    ids = [r.record_id for r in records]
    assert kiosk.post(platform, records)["accepted"] == ids
    again = kiosk.post(platform, records)
    assert again["accepted"] == []
    assert sorted(again["duplicate"]) == sorted(ids)
    assert len(_claims(platform, ids)) == 20
