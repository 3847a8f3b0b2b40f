"""The county console in a real browser (Debian's chromium via Playwright) against the platform
under uvicorn: login, 今日, acknowledging an alert, the month's settlement, closing the month,
the printable A4 page, an operator's narrower view, publishing a roster from a file, logout.
Screenshots go to tests/artifacts/console-*.png (looked at when the pages change)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.security.platform_env import TOWNSHIP_A, TOWNSHIP_B, County
from tests.support.platform import ADMIN_TOKEN
from tests.support.ui import VIEWPORT, shot
from tests.sync.console.county import point, publish_roster, terminal

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console_browser")]
OCT = "2026-10"


def new_page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def login(page, url: str, token: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def seed(county: County) -> dict[str, str]:
    """October 2026 in three villages: meals, an exception of each common kind, a heartbeat,
    and rows deleted on the platform below a checkpoint (a hole alert)."""
    a1 = point(county, TOWNSHIP_A, "东村助餐点")
    a2 = point(county, TOWNSHIP_A, "西村助餐点")
    b1 = point(county, TOWNSHIP_B, "河口助餐点")
    names = ["王秀英", "李建国", "张桂兰", "刘凤英", "陈保国", "赵丽华", "孙桂香", "周淑珍"]
    ids = [f"E{a1[3:]}-{i}" for i in range(len(names))]
    roster = {e: (n, "active") for e, n in zip(ids, names, strict=True)}
    roster[ids[7]] = (names[7], "deceased")
    publish_roster(county, a1, roster)
    publish_roster(county, a2, {f"W{a2[3:]}-1": ("吴长顺", "active")})
    publish_roster(county, b1, {f"H{b1[3:]}-1": ("何福生", "active")}, TOWNSHIP_B)
    t1, t2 = terminal(county, a1), terminal(county, a2)
    tb = terminal(county, b1, TOWNSHIP_B)
    records = []
    for d in range(1, 23):
        day = dt.date(2026, 10, d)
        if day.weekday() < 5:
            records += [t1.record(day, e) for e in ids[:6]]
    records.append(t1.record(dt.date(2026, 10, 26), ids[6], method="manual", reason="忘带卡",
                             caregiver="C001"))  # fmt: skip
    records.append(t1.record(dt.date(2026, 10, 27), ids[5], flags="face_mismatch"))
    records.append(t1.record(dt.date(2026, 10, 27), ids[7]))
    t1.upload(records)
    t2.upload(
        [t2.record(dt.date(2026, 10, 5), f"W{a2[3:]}-1"), t2.record(dt.date(2026, 10, 5), ids[0])]
    )  # fmt: skip  (roaming: a duplicate)
    t2.upload([t2.record(dt.date(2026, 10, 6 + i), f"W{a2[3:]}-1") for i in range(6)])
    t2.checkpoint()
    tb.upload([tb.record(dt.date(2026, 10, 9), f"H{b1[3:]}-1")])
    t1.heartbeat(headcount={"meal/lunch": 23}, caregivers_on_duty=["C001", "C002"],
                 location={"latitude": 30.65731, "longitude": 104.06582}, queue_depth=2,
                 oldest_unsent_age_s=95)  # fmt: skip
    engine = create_engine(county.platform.db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM record WHERE device_id = :d AND seq = 4"),
                     {"d": t2.device_id})  # fmt: skip
    engine.dispose()
    county.admin.verify()
    return {"a1": a1, "a2": a2, "b1": b1, "t2": t2.device_id}


@pytest.mark.parametrize("county", ["sqlite"], indirect=True)
def test_the_county_runs_october_in_the_browser(  # type: ignore[no-untyped-def]
    county: County, browser, tmp_path: Path
) -> None:
    s = seed(county)
    url = county.url
    context, page = new_page(browser)
    try:
        login(page, url, ADMIN_TOKEN)
        row = page.locator(f"tr[data-point='{s['a1']}']")
        assert "在线" in row.inner_text() and "23" in row.inner_text()
        assert "离线" in page.locator(f"tr[data-point='{s['a2']}']").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        shot(page, "console-today")

        page.click("nav >> text=预警")
        hole = page.locator("tr[data-kind='hole']").filter(has_text=s["t2"])
        assert "missing_seqs" in hole.inner_text()
        hole.locator("input[name=note]").fill("已电话核实，平台库被误删")
        hole.locator("button[value=ack]").click()
        page.wait_for_url("**/console/alerts?state=open")
        page.goto(url + "/console/alerts?state=ack")
        acked = page.locator("tr[data-kind='hole']").filter(has_text=s["t2"])
        assert "已确认" in acked.inner_text() and "平台库被误删" in acked.inner_text()
        shot(page, "console-alerts")

        page.goto(url + f"/console/settlement?month={OCT}")
        summary = page.locator(f"tr[data-point='{s['a1']}']").inner_text()
        # 6 elders x 16 weekdays at 4.20 (the rate from 2026-05-16); 3 exceptions.
        assert summary.split("\t")[1:5] == ["96", "0", "403.20", "3"], summary
        shot(page, "console-settlement")
        page.click(f"tr[data-point='{s['a1']}'] >> text=按老人明细")
        assert "忘带卡" in page.inner_text("table.exceptions")
        assert "已故" in page.inner_text("table.exceptions")
        shot(page, "console-settlement-point")
        page.goto(url + f"/console/settlement?month={OCT}")
        page.click("#close-month")
        page.wait_for_selector("text=已用平台密钥签名")
        assert page.locator(".pill", has_text="签名有效").count() == 1
        assert page.locator("#close-month").count() == 0
        shot(page, "console-settlement-closed")

        page.goto(url + f"/console/settlement/{OCT}/print")
        page.emulate_media(media="print")
        assert page.locator("header").count() == 0 or not page.locator("header").is_visible()
        shot(page, "console-print")
        pdf = page.pdf(format="A4")
        assert pdf[:4] == b"%PDF"
        page.emulate_media(media="screen")

        page.goto(url + "/")
        page.click("header button[type=submit]")  # 退出
        page.wait_for_url("**/login")
        page.goto(url + "/console/settlement")
        assert page.url.endswith("/login")
    finally:
        context.close()

    context, page = new_page(browser)
    try:
        login(page, url, county.op_a.token)
        assert page.locator(f"tr[data-point='{s['b1']}']").count() == 0
        page.goto(url + f"/console/points/{s['a2']}")
        csv = tmp_path / "roster.csv"
        csv.write_text("编号,姓名,卡号,状态\nNEW-1,郑大妈,A0001234,在册\n", encoding="utf-8")
        page.set_input_files("input[type=file]", str(csv))
        page.wait_for_function("document.getElementById('roster-csv').value.includes('郑大妈')")
        page.click("#publish-roster")
        page.wait_for_selector("text=已发布第 2 版花名册（1 人）")
        page.click("#issue-code")
        assert len(page.inner_text("#new-code")) >= 8
        shot(page, "console-roster")
        assert page.goto(url + f"/console/points/{s['b1']}").status == 404
    finally:
        context.close()
