"""Fixtures for the sync tests: the reference platform under uvicorn (SQLite and PostgreSQL),
a kiosk store with a registered device key. What they build lives in tests/support."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.db import Store
from sync.signing import generate_device_key
from tests.support.outbox import Kiosk, seed_elders
from tests.support.platform import Platform, backend_db_url, sqlite_url, start_platform


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One platform per backend for the session; tests isolate themselves by device id."""
    workdir = tmp_path_factory.mktemp(f"platform-{request.param}")
    p = start_platform(backend_db_url(request, request.param, workdir), workdir)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def sqlite_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A SQLite platform for the fault-injection tests (the backend is not what they test)."""
    workdir = tmp_path_factory.mktemp("platform-faults")
    p = start_platform(sqlite_url(workdir), workdir)
    yield p
    p.stop()


@pytest.fixture
def kiosk(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> Kiosk:
    """A kiosk store with elders, a device key, and its device registered on `platform`."""
    platform: Platform = (
        request.getfixturevalue("platform")
        if "platform" in request.fixturenames
        else request.getfixturevalue("sqlite_platform")
    )
    seed_elders(store)
    key_path = tmp_path / "data" / "keys" / "device.key"
    key = generate_device_key(key_path)
    device_id = "dev-" + uuid.uuid4().hex[:10]
    point_id = "pt-" + uuid.uuid4().hex[:8]
    token = platform.register(device_id, point_id, key)
    return Kiosk(store, key, key_path, device_id, point_id, token)
