"""Shared setup for the platform's security tests: the reference platform under uvicorn on
SQLite and PostgreSQL (one per backend per session), a county with two townships, enrolled
devices, and hand-built signed record chains (so the tests do not depend on the kiosk).

Import the fixtures into a test module with `from tests.security.platform_env import *`-style
explicit imports; pytest finds them there."""

from __future__ import annotations

import datetime as dt
import gzip
import uuid
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.platform.admin_client import AdminClient, enrol_device
from sync.wire import (
    GENESIS_HASH,
    b64encode,
    checkpoint_message,
    link_hash,
    record_message,
)
from tests.support.platform import (
    ADMIN_TOKEN,
    Platform,
    backend_db_url,
    sqlite_url,
    start_platform,
)

SITE = zoneinfo.ZoneInfo("Asia/Shanghai")
TOWNSHIP_A = "城关镇"
TOWNSHIP_B = "河口乡"


@dataclass
class County:
    """A platform with an administrator and one operator per township."""

    platform: Platform
    http: httpx.Client
    admin: AdminClient
    op_a: AdminClient
    op_b: AdminClient

    @property
    def url(self) -> str:
        return self.platform.url

    def point(self, township: str = TOWNSHIP_A) -> str:
        point_id = "pt-" + uuid.uuid4().hex[:8]
        self.admin.create_point(point_id, township)
        return point_id

    def operator_for(self, township: str) -> AdminClient:
        return self.op_a if township == TOWNSHIP_A else self.op_b

    def device(self, township: str = TOWNSHIP_A) -> Device:
        point_id = self.point(township)
        key = Ed25519PrivateKey.generate()
        device_id = "dev-" + uuid.uuid4().hex[:8]
        code = self.operator_for(township).issue_code(point_id)
        token = enrol_device(self.http, code, device_id, point_id, public_b64(key))
        return Device(device_id, point_id, key, token)

    def as_admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return call(self.http, method, path, ADMIN_TOKEN, **kw)


@dataclass
class Device:
    device_id: str
    point_id: str
    key: Ed25519PrivateKey
    token: str


def public_b64(key: Ed25519PrivateKey) -> str:
    return b64encode(key.public_key().public_bytes_raw())


def call(http: httpx.Client, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return http.request(method, path, headers=headers, **kw)


def make_county(platform: Platform) -> County:
    http = httpx.Client(base_url=platform.url, timeout=60)
    admin = AdminClient(http, ADMIN_TOKEN)
    suffix = uuid.uuid4().hex[:6]
    op_a = AdminClient(http, admin.create_operator(f"op-a-{suffix}", TOWNSHIP_A))
    op_b = AdminClient(http, admin.create_operator(f"op-b-{suffix}", TOWNSHIP_B))
    return County(platform, http, admin, op_a, op_b)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def county(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[County]:
    """The platform on each backend, with a county set up; tests isolate by point/device."""
    workdir = tmp_path_factory.mktemp(f"sec-platform-{request.param}")
    platform = start_platform(backend_db_url(request, request.param, workdir), workdir)
    try:
        yield make_county(platform)
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def sqlite_county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    workdir = tmp_path_factory.mktemp("sec-platform-sqlite-only")
    platform = start_platform(sqlite_url(workdir), workdir)
    try:
        yield make_county(platform)
    finally:
        platform.stop()


# ----------------------------------------------------------------------------- signed records


def record(
    device: Device,
    seq: int,
    prev_hash: str,
    *,
    day: dt.date = dt.date(2026, 11, 30),
    checked_in_at: dt.datetime | None = None,
    elder: str | None = None,
    record_id: str | None = None,
    key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """One record as the kiosk would send it, chained to `prev_hash` and signed."""
    at = checked_in_at or dt.datetime.combine(day, dt.time(11, 30), tzinfo=SITE)
    fields: dict[str, Any] = {
        "record_id": record_id or str(uuid.uuid4()),
        "seq": seq,
        "device_id": device.device_id,
        "elder_id": elder or f"E{seq:05d}",
        "service": "meal",
        "slot": "lunch",
        "service_date": day,
        "checked_in_at": at,
        "method": "card",
        "card_uid": None,
        "reader": "desk",
        "distance": None,
        "margin": None,
        "liveness": None,
        "flags": "",
        "caregiver_id": None,
        "reason": None,
    }
    digest = link_hash(prev_hash, fields)
    signature = b64encode((key or device.key).sign(record_message(digest)))
    wire = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in fields.items()}
    return {**wire, "prev_hash": prev_hash, "hash": digest, "signature": signature}


def chain(device: Device, n: int, start: int = 1, prev: str = GENESIS_HASH,
          **kw: Any) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for seq in range(start, start + n):
        rec = record(device, seq, prev, **kw)
        out.append(rec)
        prev = rec["hash"]
    return out


def upload(county: County, device: Device, records: list[dict[str, Any]],
           token: str | None = None) -> httpx.Response:  # fmt: skip
    body = {
        "protocol": 1,
        "device_id": device.device_id,
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
        "records": records,
    }
    import json

    return call(
        county.http, "POST", "/v1/records", token or device.token,
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )  # fmt: skip


def checkpoint(county: County, device: Device, seq: int, head: str) -> httpx.Response:
    made_at = dt.datetime.now(dt.UTC)
    sig = device.key.sign(checkpoint_message(device.device_id, seq, head, made_at))
    body = {
        "device_id": device.device_id,
        "seq": seq,
        "head_hash": head,
        "made_at": made_at.isoformat(timespec="microseconds"),
        "signature": b64encode(sig),
    }
    return call(county.http, "POST", "/v1/checkpoints", device.token, json=body)
