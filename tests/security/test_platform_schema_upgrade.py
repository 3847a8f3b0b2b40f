"""A platform database made by the reference platform before the roles keeps working: the
new columns are added at start, the device's token and key still work, its records count."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from sync.platform.app import create_platform_app
from sync.platform.credentials import token_digest
from sync.platform.state import Limits
from tests.security.platform_env import (
    ADMIN_TOKEN,
    County,
    Device,
    chain,
    public_b64,
    upload,
)
from tests.support.paths import REPO

FIRST_TABLES = "43a98bf"  # the commit before the roles: the platform's original tables


def old_tables() -> Any:
    source = subprocess.run(
        ["git", "show", f"{FIRST_TABLES}:sync/platform/tables.py"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader("old_platform_tables", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy resolves the annotations through it
    exec(compile(source, "old_tables.py", "exec"), module.__dict__)
    return module


@pytest.fixture(params=["sqlite", "postgres"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("postgres").new_database())


def test_an_old_platform_database_is_upgraded_in_place(old_db: str) -> None:
    old = old_tables()
    engine = create_engine(old_db)
    old.PlatformBase.metadata.create_all(engine)
    key = Ed25519PrivateKey.generate()
    with Session(engine) as session, session.begin():
        session.add(
            old.Device(
                device_id="old-dev", point_id="pt-old", token_sha256=token_digest("old-token"),
                public_key=public_b64(key), registered_at="2026-06-01T00:00:00+00:00",
            )
        )  # fmt: skip
    engine.dispose()

    app = create_platform_app(
        old_db, Ed25519PrivateKey.generate(), ADMIN_TOKEN, limits=Limits(verify_interval_s=0)
    )
    http = TestClient(app)
    device = Device("old-dev", "pt-old", key, "old-token")
    county = County(None, http, None, None, None)  # type: ignore[arg-type]
    result = upload(county, device, chain(device, 3)).json()
    assert len(result["accepted"]) == 3, result
    view = county.as_admin("GET", "/v1/admin/devices/old-dev/records").json()
    assert view["count"] == 3 and view["contiguous_seq"] == 3 and view["alerts"] == []
