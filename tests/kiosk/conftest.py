"""Fixtures shared by the kiosk UI tests: a signed-in TestClient and a Chromium page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kiosk.api.factory import create_app
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from tests.support.ui import PIN, VIEWPORT


@pytest.fixture
def caregiver_client(services: KioskServices) -> Iterator[TestClient]:
    """The app with one caregiver (C001, 王秀兰, PIN 2580), not yet signed in."""
    CaregiverBook(services.store, services.config.ui, services.now).add("王秀兰", PIN)
    with TestClient(create_app(services)) as client:
        yield client


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(5000)
    yield page
    context.close()
