"""A second 留样 entry for a day's slot, or a second inspection in a week, is a correction: it
replaces the first, is audited as a replacement, and is queued for upload again."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from kiosk.config import KioskConfig
from kiosk.touchscreen.caregivers import CaregiverBook
from kiosk.touchscreen.ledgers import INSPECTION_ITEMS, record_inspection, record_sample
from models.db import Store
from models.tables import AuditEvent, FoodSample, SafetyInspection
from tests.support.roster import TZ
from tests.support.ui import PIN

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=TZ)


@pytest.fixture
def store(store: Store, config: KioskConfig) -> Store:
    """With the two caregivers the entries name (C001, C002)."""
    book = CaregiverBook(store, config.ui, lambda: NOW)
    book.add("孙桂香", PIN, phone="13900003333")
    book.add("王秀兰", "1397", phone="13900001111")
    return store


def _audits(store: Store, kind: str) -> list[bool]:
    with store.read() as s:
        rows = s.scalars(select(AuditEvent.detail).where(AuditEvent.kind == kind)).all()
    return [json.loads(r)["replaced"] for r in rows]


def test_a_second_sample_of_the_slot_replaces_the_first(store: Store) -> None:
    day = NOW.date()
    for dishes, by in (("红烧肉、米饭", "C001"), ("红烧肉、青菜、米饭", "C002")):
        record_sample(store, caregiver_id=by, service_date=day, slot="lunch", dishes=dishes,
                      at=NOW, now=NOW)  # fmt: skip
        with store.write() as s:  # as the heartbeat marks it sent
            for row in s.scalars(select(FoodSample)):
                row.uploaded_at = NOW
    record_sample(store, caregiver_id="C002", service_date=day, slot="supper", dishes="面条",
                  at=NOW, now=NOW)  # fmt: skip
    with store.read() as s:
        rows = {r.slot: r for r in s.scalars(select(FoodSample))}
        assert set(rows) == {"lunch", "supper"}
        lunch = rows["lunch"]
        assert (lunch.dishes, lunch.caregiver_id) == ("红烧肉、青菜、米饭", "C002")
        assert rows["supper"].uploaded_at is None
    assert _audits(store, "food_sample") == [False, True, False]

    # The correction goes up again.
    record_sample(store, caregiver_id="C001", service_date=day, slot="lunch", dishes="饺子",
                  at=NOW, now=NOW)  # fmt: skip
    with store.read() as s:
        lunch = s.scalars(select(FoodSample).where(FoodSample.slot == "lunch")).one()
        assert (lunch.dishes, lunch.uploaded_at) == ("饺子", None)


def test_a_second_inspection_in_the_week_replaces_the_first(store: Store) -> None:
    ok = {k: "ok" for k in INSPECTION_ITEMS}
    record_inspection(store, caregiver_id="C001", day=NOW.date(), checks=ok, problems="",
                      fixed="", now=NOW)  # fmt: skip
    gas = ok | {"gas": "problem"}
    later = NOW + dt.timedelta(days=2)  # the same week (Monday 30 Nov)
    record_inspection(store, caregiver_id="C002", day=later.date(), checks=gas,
                      problems="管子老化", fixed="已换", now=later)  # fmt: skip
    with store.read() as s:
        [row] = s.scalars(select(SafetyInspection)).all()
        assert (row.week_start, row.caregiver_id, row.problems) == (
            dt.date(2026, 11, 30), "C002", "管子老化",
        )  # fmt: skip
        assert json.loads(row.checks)["gas"] == "problem"
    assert _audits(store, "safety_inspection") == [False, True]
