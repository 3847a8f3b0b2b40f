"""Issue 14.2 on the console: 今日 shows per point the roaming meals of today (外点来客: visitors
served here; 本点外出: its own elders served at other points), per slot, linked to the list of
those records (masked name, home or eating point, time, method); a township operator sees
only his township's points, and of a visitor from another township only what the record at
his point says. On SQLite and PostgreSQL, the platform under uvicorn."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import httpx
import pytest

from tests.security.platform_env import TOWNSHIP_A, TOWNSHIP_B, County
from tests.support.platform import ADMIN_TOKEN
from tests.sync.console.county import SITE, Terminal, console_for, point, publish_roster, terminal

pytestmark = pytest.mark.slow


@dataclass
class Roaming:
    a1: str  # home of 王秀英 and 李建国 (township A)
    a2: str  # serves visitors (township A)
    b1: str  # township B: home of 何福生, serves 李建国 once
    e1: str
    e2: str
    h1: str
    records: dict[str, str]  # what -> record id


def seed_today(county: County) -> Roaming:
    """Today's meals: at a2, 王秀英 (lunch, card) and 李建国 (breakfast, manual) of a1 and
    何福生 of b1 (lunch); a2's own elder; at b1, 李建国 (lunch). All visitors flagged by the
    eating point's terminal, as the kiosk records them."""
    a1, a2 = point(county, TOWNSHIP_A, "东村助餐点"), point(county, TOWNSHIP_A, "西村助餐点")
    b1 = point(county, TOWNSHIP_B, "河口助餐点")
    e1, e2, w1, h1 = (f"{p}-{a1[3:]}" for p in ("E1", "E2", "W1", "H1"))
    publish_roster(county, a1, {e1: ("王秀英", "active"), e2: ("李建国", "active")})
    publish_roster(county, a2, {w1: ("吴长顺", "active")})
    publish_roster(county, b1, {h1: ("何福生", "active")}, TOWNSHIP_B)
    t2: Terminal = terminal(county, a2)
    tb: Terminal = terminal(county, b1, TOWNSHIP_B)
    today = dt.datetime.now(SITE).date()
    recs = {
        "e1@a2": t2.record(today, e1, flags="visitor"),
        "e2@a2": t2.record(
            today,
            e2,
            slot="breakfast",
            method="manual",
            reason="忘带卡",
            caregiver="C001",
            flags="visitor",
        ),
        "h1@a2": t2.record(today, h1, flags="visitor"),
        "w1@a2": t2.record(today, w1),
    }
    t2.upload(list(recs.values()))
    recs["e2@b1"] = tb.record(today, e2, flags="visitor")
    tb.upload([recs["e2@b1"]])
    return Roaming(a1, a2, b1, e1, e2, h1, {k: str(r["record_id"]) for k, r in recs.items()})


def today_cell(html: str, point_id: str) -> str:
    row = re.search(rf'<tr data-point="{point_id}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {point_id}"
    cell = re.search(r'<td class="roaming">(.*?)</td>', row.group(1), re.S)
    assert cell
    return re.sub(r"<[^>]+>", "", cell.group(1)).replace("\n", " ")


def list_rows(html: str, which: str) -> dict[str, str]:
    """record id -> the row's text, in the list `here` or `away`."""
    table = re.search(rf'<table data-list="{which}">(.*?)</table>', html, re.S)
    assert table
    rows = re.findall(r'<tr data-record="([^"]+)">(.*?)</tr>', table.group(1), re.S)
    return {rid: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip() for rid, body in rows}


def test_today_counts_visitors_per_slot_and_lists_them_for_the_administrator(
    county: County,
) -> None:
    s = seed_today(county)
    admin = console_for(county, ADMIN_TOKEN)
    try:
        page = admin.get("/").text
        assert set(re.findall(r"外点来客 (\S+)：(\d+)", today_cell(page, s.a2))) == {
            ("助餐·午餐", "2"), ("助餐·早餐", "1")
        }  # fmt: skip
        assert "本点外出" not in today_cell(page, s.a2)  # a2's own elder ate at home
        assert set(re.findall(r"本点外出 (\S+)：(\d+)", today_cell(page, s.a1))) == {
            ("助餐·午餐", "2"), ("助餐·早餐", "1")
        }  # fmt: skip
        assert set(re.findall(r"外点来客 (\S+)：(\d+)", today_cell(page, s.b1))) == {
            ("助餐·午餐", "1")
        }  # fmt: skip
        assert set(re.findall(r"本点外出 (\S+)：(\d+)", today_cell(page, s.b1))) == {
            ("助餐·午餐", "1")
        }  # fmt: skip
        assert f'href="/console/visitors/{s.a2}#here"' in page
        assert f'href="/console/visitors/{s.a1}#away"' in page

        here = list_rows(admin.get(f"/console/visitors/{s.a2}").text, "here")
        r = s.records
        assert set(here) == {r["e1@a2"], r["e2@a2"], r["h1@a2"]}  # not a2's own elder
        assert here[r["e1@a2"]] == f"11:40 助餐·午餐 王*英 {s.e1} 东村助餐点 城关镇 刷卡"
        assert here[r["e2@a2"]] == (
            f"07:30 助餐·早餐 李*国 {s.e2} 东村助餐点 城关镇 人工签到 （忘带卡）"
        )
        assert here[r["h1@a2"]] == f"11:40 助餐·午餐 何*生 {s.h1} 河口助餐点 河口乡 刷卡"
        away_page = admin.get(f"/console/visitors/{s.a1}").text
        away = list_rows(away_page, "away")
        assert away == {
            r["e2@a2"]: f"07:30 助餐·早餐 李*国 {s.e2} 西村助餐点 城关镇 人工签到 （忘带卡）",
            r["e1@a2"]: f"11:40 助餐·午餐 王*英 {s.e1} 西村助餐点 城关镇 刷卡",
            r["e2@b1"]: f"11:40 助餐·午餐 李*国 {s.e2} 河口助餐点 河口乡 刷卡",
        }
        assert list_rows(away_page, "here") == {}
        for full in ("王秀英", "李建国", "何福生"):
            assert full not in away_page
    finally:
        admin.close()


def test_an_operator_sees_his_township_and_only_the_record_of_a_foreign_visitor(
    county: County,
) -> None:
    s = seed_today(county)
    op_a = console_for(county, county.op_a.token)
    op_b = console_for(county, county.op_b.token)
    try:
        page = op_a.get("/").text
        assert f'data-point="{s.a2}"' in page and f'data-point="{s.b1}"' not in page
        here = list_rows(op_a.get(f"/console/visitors/{s.a2}").text, "here")
        r = s.records
        # 何福生 is on township B's roster: no name, no home point, only the record at a2.
        assert here[r["h1@a2"]] == f"11:40 助餐·午餐 — {s.h1} 其他乡镇 刷卡"
        assert here[r["e1@a2"]] == f"11:40 助餐·午餐 王*英 {s.e1} 东村助餐点 城关镇 刷卡"
        # His own elder who ate in township B: where and when, but B's point stays B's.
        away = list_rows(op_a.get(f"/console/visitors/{s.a1}").text, "away")
        assert away[r["e2@b1"]] == f"11:40 助餐·午餐 李*国 {s.e2} 河口助餐点 河口乡 刷卡"
        assert op_a.get(f"/console/visitors/{s.b1}").status_code == 404

        b_page = op_b.get(f"/console/visitors/{s.b1}").text
        assert list_rows(b_page, "here") == {r["e2@b1"]: f"11:40 助餐·午餐 — {s.e2} 其他乡镇 刷卡"}
        assert list_rows(b_page, "away") == {
            r["h1@a2"]: f"11:40 助餐·午餐 何*生 {s.h1} 西村助餐点 城关镇 刷卡"
        }
        assert "李建国" not in b_page and "李*国" not in b_page
        assert op_b.get(f"/console/visitors/{s.a2}").status_code == 404
    finally:
        op_a.close()
        op_b.close()


def test_the_visitor_list_needs_a_login(county: County) -> None:
    r = httpx.get(county.url + "/console/visitors/anything", follow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["location"] == "/login"
