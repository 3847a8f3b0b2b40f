"""Fixtures shared by the kiosk UI tests: a signed-in TestClient and a Chromium page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kiosk.api.factory import create_app
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from tests.kiosk.ui_browser import CHROMIUM, CHROMIUM_ARGS, PIN, VIEWPORT, skip_without_chromium


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in_client(client: TestClient, next_path: str, pin: str = PIN) -> str:
    """Log caregiver C001 in; returns the CSRF token for the forms that follow."""
    token = csrf_of(client.get("/caregiver/login").text)
    resp = client.post(
        "/caregiver/login",
        data={"csrf": token, "caregiver_id": "C001", "pin": pin, "next": next_path},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    return token


@pytest.fixture
def caregiver_client(services: KioskServices) -> Iterator[TestClient]:
    """The app with one caregiver (C001, 王秀兰, PIN 2580), not yet signed in."""
    CaregiverBook(services.store, services.config.ui, services.now).add("王秀兰", PIN)
    with TestClient(create_app(services)) as client:
        yield client


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
