"""The touchscreen in a real browser (Debian's chromium via Playwright) against `kiosk run`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.daemon import stop_daemon
from tests.support.ui import ARTIFACTS, PIN, VIEWPORT, Kiosk, check_legible, shot, start_kiosk

# The module shares one daemon and one Chromium: keep it on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_browser")]


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    kiosk = start_kiosk(tmp_path_factory.mktemp("ui"))
    yield kiosk
    stop_daemon(kiosk.proc)


def open_checkin(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + "/")
    # the live stream is open once the missing count has been fetched on "open"
    page.wait_for_function("document.getElementById('missing-count').textContent !== '–'")


def test_a_tap_appears_within_a_second(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    open_checkin(page, kiosk)
    kiosk.tap(5)
    page.wait_for_function(
        "document.getElementById('last-name').textContent.includes('陈保国')", timeout=1000
    )
    assert "outcome-accepted" in page.get_attribute("#last", "class")
    page.wait_for_function("document.getElementById('served').textContent === '1'", timeout=1000)
    assert page.text_content("#recent .name") == "陈*国"  # masked in the list
    size = page.evaluate("parseFloat(getComputedStyle(document.getElementById('served')).fontSize)")
    assert size >= 96
    check_legible(page)
    shot(page, "checkin")
    kiosk.tap(5)  # again: amber, already served
    page.wait_for_function(
        "document.getElementById('last').className.includes('outcome-duplicate')", timeout=1000
    )
    shot(page, "checkin-duplicate")


def test_the_missing_list_shrinks_when_one_taps(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + "/missing")
    page.wait_for_selector("#missing-list .row[data-elder]")
    before = int(page.text_content("#missing-count"))
    assert before >= 2
    assert page.locator("#missing-list .row[data-elder='E0001']").count() == 1
    assert "王*英" in page.text_content("#missing-list")  # masked without a session
    check_legible(page)
    shot(page, "missing")
    kiosk.tap(1)
    page.wait_for_function(
        f"document.getElementById('missing-count').textContent === '{before - 1}'", timeout=2000
    )
    assert page.locator("#missing-list .row[data-elder='E0001']").count() == 0


def test_manual_checkin_wrong_then_right_pin(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + "/manual")
    assert "/caregiver/login" in page.url
    page.click("text=孙桂香")
    for digit in "9999":
        page.click(f".pinpad [data-digit='{digit}']")
    page.click("#login-submit")
    assert "密码不对" in page.text_content("#login-message")
    check_legible(page)
    shot(page, "login-wrong-pin")
    page.click("text=孙桂香")
    page.fill("#pin", PIN)
    page.click("#login-submit")
    page.wait_for_url("**/manual")
    page.fill("input[name=q]", "lj")  # 李建国 by pinyin initials
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("text=李建国")
    assert "**********" in page.text_content(".elders")  # ID number masked
    page.click("text=忘带卡")
    check_legible(page)
    shot(page, "manual")
    page.click("#manual-submit")
    assert "李建国，签到成功" in page.text_content("#manual-result")
    shot(page, "manual-done")


def test_the_page_survives_a_daemon_restart(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    open_checkin(page, kiosk)
    kiosk.restart()
    page.wait_for_selector("#offline", state="hidden", timeout=10000)
    kiosk.tap(3)
    page.wait_for_function(
        "document.getElementById('last-name').textContent.includes('张桂兰')", timeout=5000
    )


def test_the_monthly_list_prints_and_exports(page, kiosk: Kiosk, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    import openpyxl

    # the seeded lunches were the last five days: the month of yesterday has some of them
    today = httpx.get(f"{kiosk.base}/api/headcount").json()["service_date"]
    yesterday = dt.date.fromisoformat(today) - dt.timedelta(days=1)
    page.goto(f"{kiosk.base}/notices/monthly?month={yesterday:%Y-%m}")
    total = int(page.text_content("#total-meals"))
    elders = int(page.text_content("#total-elders"))
    assert total >= 3 and elders >= 3
    check_legible(page)
    shot(page, "monthly")
    pdf = page.pdf(format="A4", landscape=True, print_background=True)
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    (ARTIFACTS / "monthly.pdf").write_bytes(pdf)
    page.emulate_media(media="print")  # what the PDF shows, as a picture to look at
    page.set_viewport_size({"width": 1123, "height": 794})  # A4 landscape at 96 dpi
    shot(page, "monthly-print")
    page.emulate_media(media="screen")
    page.set_viewport_size(VIEWPORT)
    with page.expect_download() as download:
        page.click("#xlsx-link")
    path = tmp_path / "monthly.xlsx"
    download.value.save_as(path)
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    meals_col = rows[1].index("用餐总次数")
    assert rows[-1][0] == "合计" and rows[-1][meals_col] == total
    assert len(rows) - 3 == elders
    assert sum(r[meals_col] for r in rows[2:-1]) == total


def test_the_notice_board(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.base + "/notices")
    assert "赵丽华" in page.text_content(".board")
    check_legible(page)
    shot(page, "notices")
