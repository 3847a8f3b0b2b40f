"""Fixtures shared by the whole suite: a config, a migrated store, services with a fixed clock.

Helpers (Clock, elder_row, BASE_CONFIG, processes) live in tests/support; import them from there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware.simulated import SimulatedReader
from kiosk.config import KioskConfig, ReaderConfig, parse_config
from kiosk.ops.storage import open_store
from kiosk.runtime.daemon import build_services
from kiosk.runtime.services import KioskServices
from models.db import Store
from models.roster import apply_rows
from tests.support import paths as paths_module
from tests.support.config import BASE_CONFIG
from tests.support.paths import FACE_DATA_MISSING, face_data_or_skip
from tests.support.platform import Postgres, PostgresMissingError, running_postgres
from tests.support.roster import TZ, Clock, elder_row
from tests.support.ui import CHROMIUM, CHROMIUM_ARGS, skip_without_chromium

# Fixtures that start real services (uvicorn, PostgreSQL, pcscd, Chromium): a test using one is
# slow whether or not its module says so, and `make test-fast` leaves it out.
SLOW_FIXTURES = frozenset(
    {"platform", "sqlite_platform", "postgres", "pcscd", "vpcd", "browser", "page"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Every skip for missing face photos is reported at one place, so `-ra` folds them into
    one line saying where the photos come from (not one line per test)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and FACE_DATA_MISSING in str(longrepr[2]):
        report.longrepr = (paths_module.__file__, paths_module.SKIP_LINE, str(longrepr[2]))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One throwaway PostgreSQL server per test session (per xdist worker); each platform
    fixture takes a new database on it. Skips where the server binaries are missing."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def face_data() -> Path:
    """The shared face photographs (../shared/faces or $KIOSK_FACE_DATA); skips where absent."""
    return face_data_or_skip()


@pytest.fixture
def config() -> KioskConfig:
    return parse_config(BASE_CONFIG)


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium under Playwright, one per test module (skipped where it is missing)."""
    skip_without_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def services(
    config: KioskConfig, store: Store, clock: Clock, tmp_path: Path
) -> Iterator[KioskServices]:
    reader = SimulatedReader("desk")
    services = build_services(
        config,
        tmp_path / "data",
        readers=[(ReaderConfig(kind="simulated", name="desk"), reader)],
        store=store,
        clock=clock,
    )
    apply_rows(
        store,
        [
            elder_row(1, name="王秀英"),
            elder_row(2, name="李建国"),
            elder_row(3, name="张德明", status="suspended"),
            elder_row(4, name="刘凤英", agreement_signed=False),
            elder_row(5, name="陈保国", card_uid=None),
        ],
        clock(),
        source="test",
    )
    yield services
