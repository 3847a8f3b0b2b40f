"""Visitors (roaming elders, 全城通) on the touchscreen in Chromium against `kiosk run`: the
headcount's 本点/外点 split with the 外点 badge in the list, and a visitor who forgot his card
checked in by the caregiver from the county list."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.config import load_config
from kiosk.touchscreen.caregivers import CaregiverBook
from models.db import Store
from sync.county_cards import list_path
from tests.support.daemon import start_daemon, stop_daemon
from tests.support.ui import PIN, ROSTER, check_legible, shot, sign_in_page

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_visitors")]

VISITOR_CARD = "C0FFEE01"
COUNTY_LIST = {
    VISITOR_CARD: ["V0001", "pt-home", "东村助餐点", "王外点"],
    "BEEF0002": ["V0002", "pt-home", "东村助餐点", "赵远方"],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ui-visitors")

    def prepare(store: Store, data_dir: Path) -> None:
        # The list as the kiosk keeps it once pulled and verified (tests/sync/test_roaming.py).
        doc = {"version": 1, "cards": COUNTY_LIST}
        list_path(store).write_text(json.dumps(doc), encoding="utf-8")
        config = load_config(tmp / "config.yaml")
        book = CaregiverBook(store, config.ui, lambda: dt.datetime.now(config.site.tz))
        book.add("孙桂香", PIN, phone="13900003333")

    proc, url = start_daemon(
        tmp, ROSTER, extra_config="roaming: {accept_visitors: true}\n", prepare=prepare
    )
    yield url
    stop_daemon(proc)


def tap(base: str, uid: str | None) -> None:
    httpx.post(f"{base}/api/simulate/tap", json={"uid": uid}, timeout=5).raise_for_status()


def test_headcount_shows_this_point_and_visitors(page, base: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('missing-count').textContent !== '–'")
    assert page.text_content("#served-split") == "本点 0 人 · 外点 0 人"
    tap(base, ROSTER[0].card_uid)
    tap(base, VISITOR_CARD)
    page.wait_for_function(
        "document.getElementById('served-visitors').textContent === '1'", timeout=2000
    )
    assert page.text_content("#served") == "2"
    assert page.text_content("#served-local") == "1"
    assert "外点老人 · 来自东村助餐点" in page.text_content("#last-message")
    first = page.locator("#recent li").first
    assert first.locator(".visitor").text_content() == "外点"
    assert page.locator("#recent li").nth(1).locator(".visitor").count() == 0
    check_legible(page)
    shot(page, "checkin-visitor")


def test_caregiver_checks_in_a_visitor_without_his_card(page, base: str) -> None:  # type: ignore[no-untyped-def]
    sign_in_page(page, base, "/manual")
    for letter in "ZYF":  # 赵远方 by the pinyin initials on the letter pad
        page.click(f".search-letters [data-letter='{letter}']")
    page.click("#elder-search button[type=submit]")
    page.wait_for_selector("#visitor-list")
    assert "来自东村助餐点" in page.text_content("#visitor-list")
    page.click("text=忘带卡")
    check_legible(page)
    shot(page, "manual-visitor")
    page.click("#manual-submit")
    assert "赵远方，外点老人 · 来自东村助餐点，签到成功" in page.text_content("#manual-result")
    body = httpx.get(f"{base}/api/headcount", timeout=5).json()
    assert body["visitors"] >= 1 and body["recent"][0]["method"] == "manual"
