"""Fixtures for the attack tests: the kiosk app with a caregiver, and the reference platform
in-process behind a link that can be cut (for the sync recovery tests)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from hardware.backoff import Backoff  # the implementation the daemon injects
from kiosk.api.factory import create_app
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from models.db import Store
from sync.client import PlatformClient
from sync.platform.admin_client import enrol_with_admin
from sync.platform.app import create_platform_app
from sync.scheduler import SyncRunner
from sync.signing import default_key_path, generate_device_key
from sync.uploader import Uploader
from tests.support.security import PIN, FakeTime, Linked, SwitchedLink


@pytest.fixture
def book(services: KioskServices) -> CaregiverBook:
    book = CaregiverBook(services.store, services.config.ui, services.now)
    book.add("王秀兰", PIN)  # C001
    book.add("李春花", "518293")  # C002
    return book


@pytest.fixture
def app(services: KioskServices, book: CaregiverBook) -> Any:
    return create_app(services)


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


# ----------------------------------------------------------------------------- platform link


@pytest.fixture
def linked(store: Store, tmp_path: Path) -> Iterator[Linked]:
    """A SyncRunner talking to a real platform app over a link the test can cut."""
    admin = "admin-" + uuid.uuid4().hex
    app = create_platform_app(
        f"sqlite:///{tmp_path / 'platform.db'}", Ed25519PrivateKey.generate(), admin
    )
    device_id = "sec-" + uuid.uuid4().hex[:8]
    key = generate_device_key(default_key_path(store.db_path.parent))  # where `kiosk sync` looks
    with TestClient(app) as county:  # administrator, operator and enrolment code, as in life
        token = enrol_with_admin(county, admin, device_id, "ZY-TEST-001", key.public_key_b64)
    client = PlatformClient("http://platform.test", token)
    link = SwitchedLink(
        app, base_url="http://platform.test", headers={"Authorization": f"Bearer {token}"}
    )
    client._http = link
    calls: list[tuple[dt.date, dt.date]] = []
    real_reconcile = client.reconcile

    def counting_reconcile(date_from: dt.date, date_to: dt.date) -> Any:
        report = real_reconcile(date_from, date_to)
        calls.append((date_from, date_to))  # only reconciliations the platform answered
        return report

    client.reconcile = counting_reconcile  # type: ignore[method-assign]
    fake_time = FakeTime()
    # The daemon's clock reads the system zone; here a zone ahead of UTC, like a county server.
    shanghai = dt.timezone(dt.timedelta(hours=8))
    runner = SyncRunner(
        store,
        client,
        Uploader(store, client, key, device_id, batch_size=50),
        device_id=device_id,
        point_id="ZY-TEST-001",
        verifier=None,
        clock=lambda: dt.datetime.now(shanghai),
        backoff=Backoff(base=30, cap=60, monotonic=fake_time),
    )
    with link:
        yield Linked(runner, client, link, fake_time, device_id, calls)
