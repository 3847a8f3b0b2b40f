# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, point 4 (platform side): hostile input is a 4xx with a message, never a 500.

Before the fix: seq 2^63-1 overflowed SQLite's integer in the neighbour lookup (and PostgreSQL's
int4 column) and a non-ASCII bearer token made the operator check raise TypeError: both 500.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import pytest

from sync.wire import GENESIS_HASH
from tests.security.platform_env import (
    ADMIN_TOKEN,
    County,
    call,
    checkpoint,
    county,
    record,
    upload,
)

BIG = 2**63 - 1


def test_seq_at_the_top_of_int64_is_422(county: County) -> None:
    device = county.device()
    rec = record(device, BIG, GENESIS_HASH)
    r = upload(county, device, [rec])
    assert r.status_code == 422, r.text
    assert "out of range" in r.text
    r = checkpoint(county, device, BIG, rec["hash"])
    assert r.status_code == 422 and "out of range" in r.text, r.text
    r = call(county.http, "GET", "/v1/roster", device.token, params={"since": BIG + 1})
    assert r.status_code == 422, r.text
    # Nothing was stored, and the device still works.
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == 0
    ok = upload(county, device, [record(device, 1, GENESIS_HASH)])
    assert ok.status_code == 200 and len(ok.json()["accepted"]) == 1


def raw_get(county: County, path: str, authorization: bytes) -> tuple[int, bytes]:
    """A request with header bytes no well-behaved client library would send."""
    url = urlparse(county.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split()[1]), answer


@pytest.mark.parametrize(
    "token",
    [
        "Bearer 令牌".encode(),
        "Bearer admïn".encode("latin-1"),
        b"Bearer " + ADMIN_TOKEN.encode() + "é".encode(),
        b"Bearer \x7f\x7f",
        b"Bearer " + b"A" * 5000,
    ],
)
@pytest.mark.parametrize(
    "path", ["/v1/admin/alerts", "/v1/reconcile/2026-12-01/seqs", "/v1/admin/points"]
)
def test_non_ascii_or_absurd_bearer_tokens_are_401(county: County, token: bytes, path: str) -> None:
    status, answer = raw_get(county, path, token)
    assert status == 401, answer[:300]
    assert b"detail" in answer


def test_malformed_enrolment_and_admin_forms_are_4xx(county: County) -> None:
    point = county.point()
    code = county.op_a.issue_code(point)
    bad_key = {"device_id": "d-x", "point_id": point, "public_key": "!" * 44}
    r = call(county.http, "POST", "/v1/devices", code, json=bad_key)
    assert r.status_code == 422 and "base64" in r.text, r.text
    r = call(county.http, "POST", "/v1/devices", code, content=b"{" * 5000)
    assert r.status_code == 422, r.text
    r = call(county.http, "POST", "/v1/admin/operators", ADMIN_TOKEN,
             json={"name": "x", "role": "operator", "township": "t", "extra": 1})  # fmt: skip
    assert r.status_code == 422, r.text
    r = call(county.http, "POST", f"/v1/admin/points/{point}/enrolment-codes",
             county.op_a.token, json={"ttl_hours": 1e308})  # fmt: skip
    assert r.status_code == 422, r.text
