"""The touchscreen in a real browser (Debian's chromium via Playwright) against `kiosk run`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kiosk.daemon_proc import stop_daemon
from tests.kiosk.ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PIN,
    VIEWPORT,
    Kiosk,
    check_legible,
    shot,
    skip_without_chromium,
    start_kiosk,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    kiosk = start_kiosk(tmp_path_factory.mktemp("ui"))
    yield kiosk
    stop_daemon(kiosk.proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    skip_without_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(5000)
    yield page
    context.close()


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
