"""Console test fixtures: the reference platform on SQLite and PostgreSQL with a county of two
townships (an administrator, one operator each) and the subsidy rates the tests expect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.platform_env import County, make_county
from tests.support.platform import ADMIN_TOKEN, backend_db_url, start_platform
from tests.sync.console.county import Console, console_for

# Rates from 2024 on (3.35 exposes float arithmetic: 3 x 3.35 is 10.049999999999999 in binary).
RATES = [
    ("meal", "lunch", "2024-01-01", "3.35"),
    ("meal", "*", "2024-01-01", "2.80"),
    ("cleaning", "*", "2024-01-01", "12.00"),
    ("meal", "lunch", "2026-05-16", "4.20"),  # a raise within May 2026 (rate history)
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def county(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[County]:  # fmt: skip
    workdir = tmp_path_factory.mktemp(f"console-{request.param}")
    platform = start_platform(backend_db_url(request, request.param, workdir), workdir)
    try:
        county = make_county(platform)
        admin = Console(platform.url)
        assert admin.login(ADMIN_TOKEN).status_code == 303
        for service, slot, since, amount in RATES:
            r = admin.post("/console/rates", {"service": service, "slot": slot,
                           "effective_from": since, "amount": amount, "note": "测试"})  # fmt: skip
            assert r.status_code == 303, r.text
        admin.close()
        yield county
    finally:
        platform.stop()


@pytest.fixture
def admin_console(county: County) -> Iterator[Console]:
    console = console_for(county, ADMIN_TOKEN)
    yield console
    console.close()
