"""The check-in rules: slots and their edges, once per slot, refusals, durability."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy import select

from kiosk.checkin.rules import CheckinRequest, Method, Outcome, Refusal
from kiosk.runtime.services import KioskServices
from models.chain import verify_chain
from models.tables import AuditEvent, MealRecord, Outbox, row_to_dict
from tests.support.roster import Clock, elder_row


def card(n: int, service: str = "meal") -> CheckinRequest:
    return CheckinRequest(
        Method.CARD, service=service, card_uid=elder_row(n).card_uid, reader="desk"
    )


def test_accepted_card_tap_writes_record_outbox_and_chain(services: KioskServices) -> None:
    result = services.checkin.check_in(card(1))

    assert result.outcome is Outcome.ACCEPTED
    assert result.elder_name == "王秀英"
    assert result.message == "王秀英，签到成功，请用餐"
    assert (result.slot, result.seq) == ("lunch", 1)
    with services.store.read() as s:
        record = s.get(MealRecord, result.record_id)
        assert record is not None
        assert record.method == "card" and record.card_uid == elder_row(1).card_uid
        assert record.checked_in_at.utcoffset() is not None
        outbox = s.get(Outbox, result.record_id)
        assert outbox is not None and outbox.uploaded_at is None


@pytest.mark.parametrize(
    ("hhmm", "expected"),
    [
        ("06:59", None),
        ("07:00", "breakfast"),  # start is inclusive
        ("08:29", "breakfast"),
        ("08:30", None),  # end is exclusive
        ("10:59", None),
        ("11:00", "lunch"),
        ("13:29", "lunch"),
        ("13:30", None),
        ("23:59", None),
    ],
)
def test_slot_edges(services: KioskServices, clock: Clock, hhmm: str, expected: str | None) -> None:
    clock.set(hhmm)
    result = services.checkin.check_in(card(1))
    if expected is None:
        assert result.outcome is Outcome.REFUSED
        assert result.refusal is Refusal.OUTSIDE_HOURS
        assert "现在不是服务时间" in result.message
    else:
        assert result.outcome is Outcome.ACCEPTED
        assert result.slot == expected


def test_outside_hours_message_names_the_next_slot(services: KioskServices, clock: Clock) -> None:
    clock.set("09:00")
    result = services.checkin.check_in(card(1))
    assert result.message == "王秀英，现在不是服务时间（午餐 11:00–13:30）"


def test_second_tap_in_same_slot_is_duplicate_without_second_record(
    services: KioskServices, clock: Clock
) -> None:
    first = services.checkin.check_in(card(1))
    clock.set("12:45")
    again = services.checkin.check_in(card(1))

    assert again.outcome is Outcome.DUPLICATE
    assert again.first_at == first.at
    assert again.message == "王秀英，您午餐已签到（11:30）"
    with services.store.read() as s:
        assert len(s.scalars(select(MealRecord)).all()) == 1


def test_same_elder_counts_once_per_slot_per_day_and_per_service(
    services: KioskServices, clock: Clock
) -> None:
    clock.set("07:30")
    assert services.checkin.check_in(card(1)).outcome is Outcome.ACCEPTED  # breakfast
    clock.set("11:30")
    assert services.checkin.check_in(card(1)).outcome is Outcome.ACCEPTED  # lunch
    assert services.checkin.check_in(card(1, "cleaning")).outcome is Outcome.ACCEPTED  # 助洁
    assert services.checkin.check_in(card(1, "cleaning")).outcome is Outcome.DUPLICATE
    clock.set("11:30", day=3)
    assert services.checkin.check_in(card(1)).outcome is Outcome.ACCEPTED  # next day
    with services.store.read() as s:
        seqs = s.scalars(select(MealRecord.seq).order_by(MealRecord.seq)).all()
    assert seqs == [1, 2, 3, 4]


def test_unknown_card_is_refused_and_audited(services: KioskServices) -> None:
    req = CheckinRequest(Method.CARD, card_uid="DEADBEEF", reader="desk")
    result = services.checkin.check_in(req)

    assert result.outcome is Outcome.REFUSED
    assert result.refusal is Refusal.UNKNOWN_CARD
    assert result.message == "未登记的卡，请找护理员"
    with services.store.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.kind == "unknown_card")).all()
        assert [json.loads(e.detail)["card_uid"] for e in events] == ["DEADBEEF"]
        assert s.scalars(select(MealRecord)).all() == []


@pytest.mark.parametrize(
    ("n", "refusal", "message"),
    [
        (3, Refusal.NOT_ELIGIBLE, "张德明，暂不能享受助餐服务，请找护理员"),
        (4, Refusal.NO_AGREEMENT, "刘凤英，尚未签订助餐协议，请找护理员"),
    ],
)
def test_ineligible_elders_are_refused(
    services: KioskServices, n: int, refusal: Refusal, message: str
) -> None:
    result = services.checkin.check_in(card(n))
    assert (result.outcome, result.refusal, result.message) == (Outcome.REFUSED, refusal, message)


def test_agreement_not_required_when_site_says_so(services: KioskServices) -> None:
    site = services.config.site.model_copy(update={"require_agreement": False})
    services.checkin.config = services.config.model_copy(update={"site": site})
    assert services.checkin.check_in(card(4)).outcome is Outcome.ACCEPTED


def test_manual_check_in_by_elder_id_records_caregiver(services: KioskServices) -> None:
    req = CheckinRequest(Method.MANUAL, elder_id="E0005", caregiver_id="CG01", reason="forgot_card")
    result = services.checkin.check_in(req)
    assert result.outcome is Outcome.ACCEPTED
    with services.store.read() as s:
        record = s.get(MealRecord, result.record_id)
        assert record is not None
        assert (record.method, record.caregiver_id, record.reason) == (
            "manual",
            "CG01",
            "forgot_card",
        )
    unknown = services.checkin.check_in(CheckinRequest(Method.MANUAL, elder_id="NOBODY"))
    assert unknown.refusal is Refusal.UNKNOWN_ELDER


def test_request_needs_exactly_one_identity() -> None:
    with pytest.raises(ValueError, match="either a card or an elder"):
        CheckinRequest(Method.CARD)
    with pytest.raises(ValueError, match="either a card or an elder"):
        CheckinRequest(Method.CARD, card_uid="A", elder_id="B")


def test_results_are_published_on_the_bus(services: KioskServices) -> None:
    services.checkin.check_in(card(1))
    services.checkin.check_in(card(1))
    events = services.bus.recent("checkin", 10)
    assert [e.data["outcome"] for e in events] == ["accepted", "duplicate"]
    assert events[0].data["elder_name"] == "王秀英"
    assert events[0].data["method_label"] == "刷卡"


def test_chain_links_every_record(services: KioskServices, clock: Clock) -> None:
    for n in (1, 2, 5):
        if n == 5:
            services.checkin.check_in(CheckinRequest(Method.MANUAL, elder_id="E0005"))
        else:
            services.checkin.check_in(card(n))
    with services.store.read() as s:
        records = [row_to_dict(r) for r in s.scalars(select(MealRecord).order_by(MealRecord.seq))]
    assert len(records) == 3
    assert verify_chain(records) == []
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_read_only_database_refuses_with_storage_error_and_keeps_data(
    services: KioskServices,
) -> None:
    first = services.checkin.check_in(card(1))
    # The SD card going read-only under a live daemon: SQLite refuses every write on the
    # writer's (single) connection. (Real read-only and disk-full mounts: the fault suite.)
    writer = services.store._writer.raw_connection()
    writer.driver_connection.execute("PRAGMA query_only=ON")
    writer.close()
    try:
        result = services.checkin.check_in(card(2))
    finally:
        writer = services.store._writer.raw_connection()
        writer.driver_connection.execute("PRAGMA query_only=OFF")
        writer.close()
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is Refusal.STORAGE_ERROR
    assert result.message == "系统故障，请联系管理员"
    with services.store.read() as s:
        assert [r.record_id for r in s.scalars(select(MealRecord))] == [first.record_id]
    # And check-in resumes by itself once storage is writable again.
    assert services.checkin.check_in(card(2)).outcome is Outcome.ACCEPTED


def test_unique_constraint_is_enforced_by_the_database(services: KioskServices) -> None:
    result = services.checkin.check_in(card(1))
    conn = sqlite3.connect(services.store.db_path)
    try:
        row = conn.execute(
            "SELECT elder_id, service, service_date, slot FROM meal_record WHERE record_id=?",
            (result.record_id,),
        ).fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(
                "INSERT INTO meal_record (record_id, seq, device_id, elder_id, service, slot,"
                " service_date, checked_in_at, method, flags, prev_hash, hash, signature)"
                " VALUES ('x', 99, 'd', ?, ?, ?, ?, 't', 'card', '', 'p', 'h', 's')",
                (row[0], row[1], row[3], row[2]),
            )
    finally:
        conn.close()


def test_records_made_on_an_unsynchronised_clock_are_flagged(services: KioskServices) -> None:
    services.checkin.clock_unsynced = True
    result = services.checkin.check_in(card(1))
    services.checkin.clock_unsynced = False
    later = services.checkin.check_in(card(2))
    with services.store.read() as s:
        assert s.get(MealRecord, result.record_id).flags == "clock_unsynced"
        assert s.get(MealRecord, later.record_id).flags == ""
