"""The books in chromium against `kiosk run`, by touch alone: every field of a purchase and of a
meal fee is filled with clicks on the on-screen pads and lists (no keyboard event at all), then
the printable notice is printed to PDF."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemon import start_daemon, stop_daemon
from tests.support.ui import (
    ROSTER,
    Kiosk,
    check_legible,
    seed_history,
    shot,
    sign_in_page,
    skip_without_chromium,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    skip_without_chromium()
    tmp = tmp_path_factory.mktemp("books-ui")
    proc, base = start_daemon(tmp, ROSTER)
    seed_history(tmp)
    kiosk = Kiosk(tmp, proc, base)
    yield kiosk
    stop_daemon(kiosk.proc)


def open_form(page, button: str) -> None:  # type: ignore[no-untyped-def]
    page.click(button)
    page.wait_for_selector("body[data-touchpad=ready]")  # touchpad.js has wired the pads


def pad_type(page, field: str, keys: str) -> None:  # type: ignore[no-untyped-def]
    page.click(f"#f-{field}")
    page.wait_for_selector("#touchpad:not([hidden])")
    for key in keys:
        page.click(f"#touchpad .pad-key:text-is('{key}')")
    page.click("#touchpad .pad-ok")


def test_a_purchase_and_a_meal_fee_by_touch_alone(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    typed: list[str] = []
    page.expose_function("noteKey", lambda key: typed.append(key))  # noqa: PLW0108  (a bound builtin is refused)
    page.add_init_script("document.addEventListener('keydown', e => window.noteKey(e.key), true)")
    sign_in_page(page, kiosk.base, "/books")
    check_legible(page)
    shot(page, "books-empty")

    open_form(page, "#new-expense")
    page.click("#f-date")
    page.click("#touchpad .pad-key:text-is('今天')")
    page.click("#touchpad .pad-ok")
    page.click("[data-field=category] label:has-text('食材')")
    page.click("[data-field=food_type] label:has-text('肉')")
    page.click("#f-item")
    page.click("#touchpad .pad-choice:text-is('猪肉')")
    pad_type(page, "quantity", "2.5")
    page.click("[data-field=unit] label:text-is('斤')")
    pad_type(page, "amount", "37.5")
    page.click("#f-buyer")
    page.click("#touchpad .pad-choice:text-is('孙桂香')")
    check_legible(page)
    shot(page, "books-expense-form")
    page.click("#book-submit")
    page.wait_for_selector("#books-saved")
    row = page.text_content("#expenses")
    assert "猪肉" in row and "37.50" in row and "2.5斤" in row

    # a meal fee: the elder is found with the pinyin-initial letter pad
    open_form(page, "#new-meal_fee")
    page.click("#f-date")
    page.click("#touchpad .pad-key:text-is('今天')")
    page.click("#touchpad .pad-ok")
    page.click(".letter-pad .letter:text-is('C')")
    page.click(".elder-pick:has-text('陈保国')")
    page.click("[data-field=month] .toggle >> nth=0")
    page.click("[data-field=payer_relation] label:text-is('子女')")
    # a name nobody entered before: letters on the pinyin keyboard, then the character
    page.click("#f-payer_name")
    for syllable, char in (("chen", "陈"), ("qiang", "强")):
        for letter in syllable:
            page.click(f"#touchpad .pinyin-key:text-is('{letter}')")
        page.click(f"#touchpad .pinyin-char:text-is('{char}')")
    shot(page, "books-fee-pinyin")
    page.click("#touchpad .pad-ok")
    assert page.input_value("#f-payer_name") == "陈强"
    pad_type(page, "amount", "0")
    page.click("#book-submit")
    page.wait_for_selector("#form-error")  # bad input: said, and nothing stored
    assert "金额不能是 0" in page.text_content("#form-error")
    shot(page, "books-fee-error")
    page.click("#f-amount")
    page.click("#touchpad button:text-is('清空')")
    for key in "60":
        page.click(f"#touchpad .pad-key:text-is('{key}')")
    page.click("#touchpad .pad-ok")
    page.click("#book-submit")
    page.wait_for_selector("#books-saved")
    assert typed == []  # every field above was filled by clicks alone

    page.goto(kiosk.base + "/notices/books")
    assert "37.50" in page.text_content("#notice-spending")
    assert "陈强（陈保国的子女）" in page.text_content("#notice-honour")
    check_legible(page)
    shot(page, "books-notice")
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    assert pdf[:4] == b"%PDF" and len(pdf) > 5000


def test_manual_check_in_by_touch_alone(page, kiosk: Kiosk) -> None:  # type: ignore[no-untyped-def]
    typed: list[str] = []
    page.expose_function("noteKey", lambda key: typed.append(key))  # noqa: PLW0108  (a bound builtin is refused)
    page.add_init_script("document.addEventListener('keydown', e => window.noteKey(e.key), true)")
    sign_in_page(page, kiosk.base, "/manual")
    # nothing chosen yet: today's regular diners who have not come are offered first
    assert "今天还没来的常来老人" in page.text_content("#elder-listing")
    check_legible(page)
    shot(page, "manual-touch-start")
    page.wait_for_selector("body[data-touchpad=ready]")
    page.click(".search-letters .letter:text-is('C')")
    page.wait_for_url("**q=C**")
    page.wait_for_selector("body[data-touchpad=ready]")
    page.click(".search-letters .letter:text-is('B')")
    page.wait_for_url("**q=CB**")
    page.click("label.elder-choice:has-text('陈保国')")
    page.click(".choices label:has-text('忘带卡')")
    shot(page, "manual-touch-chosen")
    page.click("#manual-submit")
    page.wait_for_selector("#manual-result")
    assert "陈保国" in page.text_content("#manual-result")
    # a 村民小组 lists its elders with one tap
    page.click(".group-pad a:text-is('一组')")
    assert page.text_content("#elder-listing") == "一组"
    assert page.locator("label.elder-choice").count() >= 1
    assert typed == []
