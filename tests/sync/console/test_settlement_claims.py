"""Issue 14.3: the settlement read from the claims ingest keeps (meal_claim) is the settlement
ranked over every record (compute_from_records) — contested slots, a claim whose elder is
suspended after the fact (the second point's record is paid instead), a manual check-in before
the clean record of its slot, two records of one slot in one batch — on SQLite and PostgreSQL;
and the schema upgrade rebuilds the same claims from the stored records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from sync.platform import schema_upgrade, settlement
from sync.platform.tables import MealClaim
from tests.security.platform_env import TOWNSHIP_B, County
from tests.sync.console.county import elder_ids, point, publish_roster, terminal

pytestmark = pytest.mark.slow
MONTH = "2026-07"


def day(n: int) -> dt.date:
    return dt.date(2026, 7, n)


@pytest.fixture
def engine(county: County) -> Iterator[Engine]:
    engine = create_engine(county.platform.db_url)
    yield engine
    engine.dispose()


def both(engine: Engine, points: list[str] | None) -> tuple[Any, Any]:
    """(claims path, records path) as comparable values: lines and exceptions."""
    out = []
    with Session(engine) as session:
        for fn in (settlement.compute, settlement.compute_from_records):
            s = fn(session, MONTH, points)
            out.append((
                sorted((ln.point_id, ln.elder_id, ln.elder_name, ln.service, ln.slot,
                        str(ln.rate), ln.count, str(ln.amount)) for ln in s.lines),
                sorted((e.record_id, e.point_id, e.elder_id, e.elder_name, e.kind, e.detail,
                        e.service_date) for e in s.exceptions),
            ))  # fmt: skip
    return out[0], out[1]


def claims(engine: Engine) -> list[tuple[str, int, bool, bool | None]]:
    first, last = settlement.month_bounds(MONTH)
    with Session(engine) as session:
        rows = session.execute(
            select(MealClaim.record_id, MealClaim.kind, MealClaim.claimed, MealClaim.signature_ok)
            .where(MealClaim.service_date.between(first, last))
            .order_by(MealClaim.record_id)
        )
        return [(r, k, bool(c), s if s is None else bool(s)) for r, k, c, s in rows]


def test_claims_settle_like_the_records_and_the_upgrade_rebuilds_them(
    county: County, engine: Engine
) -> None:
    a, b = point(county), point(county, TOWNSHIP_B)
    e1, e2, e3, e4 = elder_ids("K", 4)
    publish_roster(county, a, {e1: ("周一", "active"), e2: ("吴二", "active"),
                               e3: ("郑三", "active")})  # fmt: skip
    publish_roster(county, b, {e2: ("吴二", "active"), e4: ("冯四", "active")}, TOWNSHIP_B)
    ta, tb = terminal(county, a), terminal(county, b, TOWNSHIP_B)
    ta.upload([
        ta.record(day(1), e1), ta.record(day(1), e2),
        ta.record(day(1), e3, method="manual", reason="卡丢失", caregiver="C9"),
        ta.record(day(2), e1, flags="no_face"),
        ta.record(day(3), e1), ta.record(day(3), e1),  # one slot twice in one batch
        ta.record(day(5), e3, service="cleaning", slot="day"),
    ])  # fmt: skip
    tb.upload([
        tb.record(day(1), e1),  # roaming: a's claim holds the slot
        tb.record(day(1), e2),  # e2 is on both rosters
        tb.record(day(4), e4, method="manual", reason="忘带卡"),
    ])  # fmt: skip
    tb.upload([tb.record(day(4), e4), tb.record(day(6), e1)])  # the clean one after the manual
    with Session(engine) as session:
        stored = session.scalars(
            select(MealClaim.claimed).where(MealClaim.elder_id.in_([e1, e2, e3, e4]))
        ).all()
    assert len(stored) == 12 and sum(map(bool, stored)) == 6

    claims_path, records_path = both(engine, None)
    assert claims_path == records_path
    kinds = sorted(x[4] for x in claims_path[1] if x[2] in (e1, e2, e3, e4))
    assert kinds == ["duplicate", "duplicate", "duplicate", "flagged", "manual", "manual"]

    # e2 is suspended at a after the fact: a's claim becomes ineligible and b's record of the
    # same lunch, listed as a duplicate until now, is paid instead.
    publish_roster(county, a, {e1: ("周一", "active"), e2: ("吴二", "suspended"),
                               e3: ("郑三", "active")})  # fmt: skip
    claims_path, records_path = both(engine, None)
    assert claims_path == records_path
    paid_b = [ln for ln in claims_path[0] if ln[0] == b and ln[1] == e2]
    assert [ln[6] for ln in paid_b] == [1]
    scoped_claims, scoped_records = both(engine, [b])
    assert scoped_claims == scoped_records and scoped_claims[0]

    # The upgrade of a database without the table rebuilds the same claims from the records.
    before = claims(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE meal_claim"))
    try:
        added = schema_upgrade.upgrade(engine)
    finally:
        with engine.begin() as conn:  # never leave the module's platform without its table
            MealClaim.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    assert any(a.startswith("meal_claim") for a in added), added
    assert claims(engine) == before
    assert both(engine, None)[0] == claims_path
