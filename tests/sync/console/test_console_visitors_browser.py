"""The 今日 page's roaming column (全城通: 外点来客 / 本点外出) in a real browser (Debian's chromium
via Playwright) against the platform under uvicorn: the counts per slot, the link to the
records, an operator's narrower view. Screenshots: tests/artifacts/console-today-roaming.png,
console-visitors.png, console-visitors-operator.png (looked at when the pages change)."""

from __future__ import annotations

import pytest

from tests.security.platform_env import County
from tests.support.platform import ADMIN_TOKEN
from tests.support.ui import VIEWPORT, shot
from tests.sync.console.test_console_visitors import seed_today

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console_browser")]


def signed_in(browser, url: str, token: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return context, page


@pytest.mark.parametrize("county", ["sqlite"], indirect=True)
def test_roaming_counts_on_today_open_the_records(browser, county: County) -> None:  # type: ignore[no-untyped-def]
    s = seed_today(county)
    url = county.url
    context, page = signed_in(browser, url, ADMIN_TOKEN)
    try:
        cell = page.locator(f"tr[data-point='{s.a2}'] td.roaming")
        assert "外点来客 助餐·午餐：2" in cell.inner_text()
        assert "外点来客 助餐·早餐：1" in cell.inner_text()
        home_cell = page.locator(f"tr[data-point='{s.a1}'] td.roaming").inner_text()
        assert "本点外出 助餐·午餐：2" in home_cell and "本点外出 助餐·早餐：1" in home_cell
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        page.locator(f"tr[data-point='{s.a2}']").scroll_into_view_if_needed()
        shot(page, "console-today-roaming")

        cell.locator("a[data-roaming=here]").first.click()
        page.wait_for_url(f"**/console/visitors/{s.a2}#here")
        here = page.locator("table[data-list=here] tbody tr")
        assert here.count() == 3
        visitor = page.locator(f"tr[data-record='{s.records['e2@a2']}']").inner_text()
        assert "李*国" in visitor and "东村助餐点" in visitor and "人工签到" in visitor
        assert "07:30" in visitor and "忘带卡" in visitor
        assert "李建国" not in page.content()
        shot(page, "console-visitors")
    finally:
        context.close()

    context, page = signed_in(browser, url, county.op_a.token)
    try:
        assert page.locator(f"tr[data-point='{s.b1}']").count() == 0
        page.locator(f"tr[data-point='{s.a2}'] a[data-roaming=here]").first.click()
        page.wait_for_url(f"**/console/visitors/{s.a2}#here")
        foreign = page.locator(f"tr[data-record='{s.records['h1@a2']}']").inner_text()
        assert "其他乡镇" in foreign and "何" not in foreign and "河口" not in foreign
        shot(page, "console-visitors-operator")
    finally:
        context.close()
