"""Issue 14.1/14.4: the monthly settlement — exact decimal arithmetic, each kind of exception,
roaming duplicates across points, the rate history, the close-month freeze and signature, a
late record landing in the next month's exceptions — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from sync.platform import settlement
from sync.platform.keys import load_or_create_platform_key
from tests.security.platform_env import TOWNSHIP_A, TOWNSHIP_B, County
from tests.support.paths import REPO
from tests.sync.console.county import (
    Console,
    console_for,
    elder_ids,
    point,
    publish_roster,
    terminal,
)

pytestmark = pytest.mark.slow


def computed(county: County, month: str, points: list[str] | None = None
             ) -> settlement.Settlement:  # fmt: skip
    engine = create_engine(county.platform.db_url)
    try:
        with Session(engine) as session:
            key = load_or_create_platform_key(county.platform.key_path).public_key()
            return settlement.load(session, month, points, key)
    finally:
        engine.dispose()


def lines_of(s: settlement.Settlement) -> set[tuple[str, str, str, str, str, int, str]]:
    return {(ln.point_id, ln.elder_id, ln.service, ln.slot, str(ln.rate), ln.count,
             str(ln.amount)) for ln in s.lines}  # fmt: skip


@pytest.fixture
def march(county: County) -> Iterator[dict[str, str]]:
    """March 2026 at two points of township A: clean meals, 助洁, and one of each exception."""
    a1, a2 = point(county, name="东村助餐点"), point(county, name="西村助餐点")
    e1, e2, e3, e4, e5, e9 = elder_ids("M", 6)
    publish_roster(county, a1, {e1: ("王秀英", "active"), e2: ("李建国", "active"),
                                e3: ("张桂兰", "suspended"), e4: ("刘凤英", "deceased")})  # fmt: skip
    publish_roster(county, a2, {e5: ("陈保国", "active")})
    d1, d2 = terminal(county, a1), terminal(county, a2)
    day = lambda n: dt.date(2026, 3, n)  # noqa: E731
    d1.upload([
        d1.record(day(2), e1), d1.record(day(3), e1), d1.record(day(4), e1),
        d1.record(day(2), e2), d1.record(day(3), e2, slot="breakfast"),
        d1.record(day(5), e2, service="cleaning", slot="day"),
        d1.record(day(2), e3), d1.record(day(2), e4),
        d1.record(day(4), e2, method="manual", reason="忘带卡", caregiver="C007"),
        d1.record(day(5), e1, flags="no_face"),
        d1.record(day(2), e9),
    ])  # fmt: skip
    # e1 (of point a1) also eats lunch at a2 on the 3rd: the platform heard a1 first.
    d2.upload([d2.record(day(3), e1), d2.record(day(3), e5)])
    yield {"a1": a1, "a2": a2, "e1": e1, "e2": e2, "e3": e3, "e4": e4, "e5": e5, "e9": e9}


def test_settlement_is_exact_and_lists_every_exception(county: County, march: dict[str, str]
                                                      ) -> None:  # fmt: skip
    m = march
    s = computed(county, "2026-03", [m["a1"], m["a2"]])
    assert lines_of(s) == {
        (m["a1"], m["e1"], "meal", "lunch", "3.35", 3, "10.05"),  # float would say 10.049999...
        (m["a1"], m["e2"], "meal", "lunch", "3.35", 1, "3.35"),
        (m["a1"], m["e2"], "meal", "breakfast", "2.80", 1, "2.80"),  # the "*" meal rate
        (m["a1"], m["e2"], "cleaning", "day", "12.00", 1, "12.00"),
        (m["a2"], m["e5"], "meal", "lunch", "3.35", 1, "3.35"),
    }
    assert s.total_amount == Decimal("31.55") and s.total_meals == 7
    assert all(isinstance(ln.amount, Decimal) for ln in s.lines)
    kinds = sorted((e.elder_id, e.point_id, e.kind) for e in s.exceptions)
    assert kinds == sorted([
        (m["e3"], m["a1"], "ineligible"), (m["e4"], m["a1"], "ineligible"),
        (m["e2"], m["a1"], "manual"), (m["e1"], m["a1"], "flagged"),
        (m["e9"], m["a1"], "not_on_roster"), (m["e1"], m["a2"], "duplicate"),
    ])  # fmt: skip
    detail = {e.kind + e.elder_id: e.detail for e in s.exceptions}
    assert "忘带卡" in detail["manual" + m["e2"]] and "C007" in detail["manual" + m["e2"]]
    assert "暂停" in detail["ineligible" + m["e3"]] and "已故" in detail["ineligible" + m["e4"]]
    assert "no_face" in detail["flagged" + m["e1"]]
    by_point = {p.point_id: p for p in s.by_point()}
    assert by_point[m["a1"]].amount == Decimal("28.20") and by_point[m["a1"]].exceptions == 5
    assert by_point[m["a2"]].meals == {"meal": 1} and by_point[m["a2"]].exceptions == 1


def test_settlement_pages_and_exports(county: County, march: dict[str, str],
                                      admin_console: Console, tmp_path: Path) -> None:  # fmt: skip
    m = march
    page = admin_console.get(f"/console/settlement/2026-03/points/{m['a1']}")
    assert page.status_code == 200
    assert "王秀英" in page.text and "10.05" in page.text and "忘带卡" in page.text
    assert "已故" in page.text and "人工签到" in page.text
    printable = admin_console.get(f"/console/settlement/2026-03/print?point={m['a2']}")
    assert printable.status_code == 200 and "陈保国" in printable.text
    assert "@page" in admin_console.get("/console/static/console.css").text  # A4 print rules
    xlsx = admin_console.get("/console/settlement/2026-03/xlsx")
    assert xlsx.status_code == 200
    path = tmp_path / "s.xlsx"
    path.write_bytes(xlsx.content)
    wb = load_workbook(path)
    assert wb.sheetnames[:3] == ["汇总", "明细", "例外"]
    detail = [r for r in wb["明细"].iter_rows(values_only=True) if r[1] == m["e1"]]
    assert detail == [(m["a1"], m["e1"], "王秀英", "助餐", "午餐", 3.35, 3, 10.05)]
    kinds = [r[6] for r in wb["例外"].iter_rows(values_only=True) if r[0] in (m["a1"], m["a2"])]
    assert sorted(kinds) == sorted(["名册状态非在册"] * 2 + ["人工签到", "刷卡未见本人",
                                   "不在名册", "同餐次重复"])  # fmt: skip

    # The CLI writes the same workbook straight from the database.
    out = tmp_path / "cli.xlsx"
    done = subprocess.run(
        [sys.executable, "-m", "sync.platform", "settle", "--db", county.platform.db_url,
         "--month", "2026-03", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["month"] == "2026-03" and summary["closed"] is False
    rows = {r[0]: r for r in load_workbook(out)["汇总"].iter_rows(values_only=True)}
    assert rows[m["a1"]][2:6] == (5, 1, 28.2, 5) and rows[m["a2"]][2:6] == (1, 0, 3.35, 1)
    bad = subprocess.run(
        [sys.executable, "-m", "sync.platform", "settle", "--db", county.platform.db_url,
         "--month", "2026-13", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


def test_rate_history_within_a_month(county: County, admin_console: Console) -> None:
    """May 2026: 3.35 until the 15th, 4.20 from the 16th (set in the fixture, history kept)."""
    p = point(county)
    (e,) = elder_ids("R", 1)
    publish_roster(county, p, {e: ("孙桂香", "active")})
    t = terminal(county, p)
    t.upload([t.record(dt.date(2026, 5, d), e) for d in (14, 15, 16, 17, 18)])
    s = computed(county, "2026-05", [p])
    assert lines_of(s) == {(p, e, "meal", "lunch", "3.35", 2, "6.70"),
                           (p, e, "meal", "lunch", "4.20", 3, "12.60")}  # fmt: skip
    assert s.total_amount == Decimal("19.30")
    rates = admin_console.get("/console/rates").text
    assert "4.20" in rates and "2026-05-16" in rates and "3.35" in rates
    for amount in ("3.333", "-1", "abc", "1e3"):
        r = admin_console.post("/console/rates", {"service": "meal", "slot": "lunch",
                               "effective_from": "2027-01-01", "amount": amount})  # fmt: skip
        assert r.status_code == 422, amount


def test_roaming_duplicate_across_townships(county: County) -> None:
    """An elder of a township-A point eats at a township-B point the same lunch: one meal is
    subsidised (the one the platform received first), the other is B's exception; another day
    at B alone is a subsidised visitor meal."""
    a, b = point(county, TOWNSHIP_A), point(county, TOWNSHIP_B)
    (e,) = elder_ids("V", 1)
    publish_roster(county, a, {e: ("赵丽华", "active")}, TOWNSHIP_A)
    ta, tb = terminal(county, a, TOWNSHIP_A), terminal(county, b, TOWNSHIP_B)
    day = dt.date(2026, 4, 7)
    ta.upload([ta.record(day, e)])
    tb.upload([tb.record(day, e), tb.record(day + dt.timedelta(days=1), e)])
    s = computed(county, "2026-04", [a, b])
    assert lines_of(s) == {(a, e, "meal", "lunch", "3.35", 1, "3.35"),
                           (b, e, "meal", "lunch", "3.35", 1, "3.35")}  # fmt: skip
    [dup] = s.exceptions
    assert (dup.point_id, dup.kind, dup.service_date, dup.elder_name) == (b, "duplicate", day,
                                                                         "赵丽华")  # fmt: skip
    # Township B's operator sees the duplicate at their point, judged county-wide.
    only_b = computed(county, "2026-04", [b])
    assert [x.kind for x in only_b.exceptions] == ["duplicate"] and only_b.total_meals == 1


def test_close_month_freezes_signs_and_late_records_go_to_the_next_month(
    county: County, admin_console: Console
) -> None:
    p = point(county)
    e1, e2 = elder_ids("C", 2)
    publish_roster(county, p, {e1: ("周淑珍", "active"), e2: ("吴长顺", "active")})
    t = terminal(county, p)
    t.upload([t.record(dt.date(2026, 1, 5), e1), t.record(dt.date(2026, 1, 6), e2)])
    op = console_for(county, county.op_a.token)
    try:
        assert op.post("/console/settlement/2026-01/close").status_code == 403  # admin only
    finally:
        op.close()
    assert admin_console.post("/console/settlement/2026-12/close").status_code == 409  # not over

    r = admin_console.post("/console/settlement/2026-01/close")
    assert r.status_code == 303, r.text
    page = admin_console.get("/console/settlement?month=2026-01&closed=1").text
    assert "已结账" in page and "签名有效" in page
    assert admin_console.post("/console/settlement/2026-01/close").status_code == 409
    before = computed(county, "2026-01", [p])
    assert before.closed is not None and before.signature_ok is True
    assert before.total_amount == Decimal("6.70")

    # A January meal arrives after the close: January does not move; February lists it.
    late = t.record(dt.date(2026, 1, 20), e1)
    t.upload([late, t.record(dt.date(2026, 2, 3), e1)])
    after = computed(county, "2026-01", [p])
    assert lines_of(after) == lines_of(before) and after.exceptions == []
    feb = computed(county, "2026-02", [p])
    assert feb.total_amount == Decimal("3.35")
    assert [(x.record_id, x.kind, x.service_date) for x in feb.exceptions] == [
        (late["record_id"], "late", dt.date(2026, 1, 20))
    ]
    # Closing February freezes the late record into February's exceptions, once.
    assert admin_console.post("/console/settlement/2026-02/close").status_code == 303
    assert [x.kind for x in computed(county, "2026-02", [p]).exceptions] == ["late"]
    assert computed(county, "2026-03", [p]).exceptions == []

    # Someone edits the frozen rows in the database: the signature no longer matches.
    engine = create_engine(county.platform.db_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE settlement_line SET count = 9, amount = '30.15' "
                 "WHERE month = '2026-01' AND point_id = :p"), {"p": p},
        )  # fmt: skip
    engine.dispose()
    assert computed(county, "2026-01", [p]).signature_ok is False
    assert "签名与存档不符" in admin_console.get("/console/settlement?month=2026-01").text
    # A rate change inside a closed month is refused (a closed settlement never changes).
    r = admin_console.post("/console/rates", {"service": "meal", "slot": "lunch",
                           "effective_from": "2026-01-15", "amount": "9.00"})  # fmt: skip
    assert r.status_code == 422 and "已结账" in r.text
