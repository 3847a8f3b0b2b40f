# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, points 1 and 2: one-time enrolment codes instead of a master provisioning token,
retry after a lost answer, retire and re-key, secrets never in argv, credentials hashed.

Each test performs the attack of the review: enrolling with the old master token, reusing a
code for a second box, using a code at another meal point or after it expired, retrying a lost
registration, and using a retired or re-keyed terminal's token and key.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sync.platform.admin_client import AdminClient, AdminError, enrol_device
from sync.platform.app import create_platform_app
from sync.platform.state import Limits
from sync.wire import GENESIS_HASH, b64encode, enrolment_message
from tests.security.platform_env import (
    ADMIN_TOKEN,
    TOWNSHIP_A,
    County,
    Device,
    call,
    chain,
    checkpoint,
    county,
    public_b64,
    record,
    sqlite_county,
    upload,
)
from tests.support.paths import REPO


def register(county: County, code: str, device_id: str, point_id: str,
             key: Ed25519PrivateKey, proof: bool = False) -> httpx.Response:  # fmt: skip
    headers = {}
    if proof:
        message = enrolment_message(device_id, point_id, code)
        headers["X-Device-Proof"] = b64encode(key.sign(message))
    body = {"device_id": device_id, "point_id": point_id, "public_key": public_b64(key)}
    return call(county.http, "POST", "/v1/devices", code, json=body, headers=headers)


def new_id() -> str:
    return "dev-" + uuid.uuid4().hex[:8]


def test_the_old_master_token_enrols_nothing(county: County) -> None:
    point = county.point()
    key = Ed25519PrivateKey.generate()
    for token in (ADMIN_TOKEN, county.op_a.token):
        r = register(county, token, new_id(), point, key)
        assert r.status_code == 401, r.text
        assert "unknown enrolment code" in r.text


def test_a_code_works_once_and_only_for_its_point(county: County) -> None:
    point, other_point = county.point(), county.point()
    code = county.op_a.issue_code(point)
    # At another meal point: refused, and the code is not spent by the attempt.
    r = register(county, code, new_id(), other_point, Ed25519PrivateKey.generate())
    assert r.status_code == 403 and f"for meal point {point}" in r.text, r.text
    first = register(county, code, new_id(), point, Ed25519PrivateKey.generate())
    assert first.status_code == 201, first.text
    # A second box with the same code: refused.
    second = register(county, code, new_id(), point, Ed25519PrivateKey.generate(), proof=True)
    assert second.status_code == 409 and "already been used" in second.text, second.text
    # Typed in lower case with spaces: the same code (still used).
    typed = code.lower().replace("-", " ")
    again = register(county, typed, new_id(), point, Ed25519PrivateKey.generate())
    assert again.status_code == 409, again.text
    # The audit trail names who issued the code and which device used it.
    trail = county.as_admin("GET", "/v1/admin/audit", params={"point_id": point}).json()
    actions = [e["action"] for e in trail]
    assert actions[:3] == ["create_point", "issue_code", "enrol"], actions
    assert trail[1]["role"] == "operator"
    assert trail[2]["detail"]["code_issued_by"] == trail[1]["actor"]


def test_a_code_raced_by_many_boxes_enrols_exactly_one(county: County) -> None:
    """Eight terminals present the same code at the same moment: one enrols, seven are 409."""
    from concurrent.futures import ThreadPoolExecutor

    point = county.point()
    code = county.op_a.issue_code(point)

    def attempt(_: int) -> int:
        with httpx.Client(base_url=county.url, timeout=60) as http:
            body = {"device_id": new_id(), "point_id": point,
                    "public_key": public_b64(Ed25519PrivateKey.generate())}  # fmt: skip
            headers = {"Authorization": f"Bearer {code}"}
            return http.post("/v1/devices", json=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [201] + [409] * 7, statuses
    devices = county.as_admin("GET", "/v1/admin/devices").json()
    assert sum(d["point_id"] == point for d in devices) == 1


def test_a_code_expires(tmp_path: Path) -> None:
    now = [dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)]
    app = create_platform_app(
        f"sqlite:///{tmp_path / 'p.db'}", Ed25519PrivateKey.generate(), ADMIN_TOKEN,
        clock=lambda: now[0], limits=Limits(verify_interval_s=0),
    )  # fmt: skip
    http = TestClient(app)
    admin = AdminClient(http, ADMIN_TOKEN)
    admin.create_point("pt-exp", TOWNSHIP_A)
    operator = AdminClient(http, admin.create_operator("op-exp", TOWNSHIP_A))
    code = operator.issue_code("pt-exp", ttl_hours=2)
    now[0] += dt.timedelta(hours=2, seconds=1)
    key = Ed25519PrivateKey.generate()
    try:
        enrol_device(http, code, "dev-exp", "pt-exp", public_b64(key))
        raise AssertionError("an expired code enrolled a device")
    except AdminError as exc:
        assert "HTTP 401" in str(exc) and "expired" in str(exc)
    # No code lives longer than 7 days, whatever is asked.
    r = http.post(
        "/v1/admin/points/pt-exp/enrolment-codes", json={"ttl_hours": 24 * 30},
        headers={"Authorization": f"Bearer {operator.token}"},
    )  # fmt: skip
    assert r.status_code == 422, r.text


def test_a_lost_answer_can_be_retried_by_the_key_holder_only(county: County) -> None:
    point = county.point()
    key, device_id = Ed25519PrivateKey.generate(), new_id()
    code = county.op_a.issue_code(point)
    lost = register(county, code, device_id, point, key)
    assert lost.status_code == 201  # the answer never reaches the terminal

    # Without proof of the key (someone who saw the code and the public key): refused.
    r = register(county, code, device_id, point, key)
    assert r.status_code == 401 and "prove the key" in r.text, r.text
    # Another key under the same device id: refused.
    r = register(county, code, device_id, point, Ed25519PrivateKey.generate(), proof=True)
    assert r.status_code == 409, r.text
    # The terminal itself: a fresh token; the lost one no longer works.
    retry = register(county, code, device_id, point, key, proof=True)
    assert retry.status_code == 201, retry.text
    token = retry.json()["token"]
    url = "/v1/reconcile/2026-12-01/seqs"
    assert call(county.http, "GET", url, token).status_code == 200
    assert call(county.http, "GET", url, lost.json()["token"]).status_code == 401
    # Once the terminal has used its token, the code cannot mint another one.
    r = register(county, code, device_id, point, key, proof=True)
    assert r.status_code == 409 and "in use" in r.text, r.text


def test_a_retired_terminal_is_refused_and_its_history_kept(county: County) -> None:
    device = county.device()
    records = chain(device, 3)
    assert len(upload(county, device, records).json()["accepted"]) == 3
    # An operator of another township cannot even see it.
    r = call(county.http, "POST", f"/v1/admin/devices/{device.device_id}/retire",
             county.op_b.token, json={"reason": "not mine"})  # fmt: skip
    assert r.status_code == 404, r.text
    retired = county.op_a.retire(device.device_id, "box stolen")
    assert retired["status"] == "retired" and retired["last_seq"] == 3
    r = upload(county, device, [record(device, 4, records[-1]["hash"])])
    assert r.status_code == 401 and "retired" in r.text, r.text
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == 3
    trail = county.as_admin("GET", "/v1/admin/audit", params={"point_id": device.point_id})
    retire = [e for e in trail.json() if e["action"] == "retire"]
    assert retire and retire[0]["detail"]["reason"] == "box stolen"


def test_rekey_stops_the_old_key_and_token_and_continues_the_chain(county: County) -> None:
    device = county.device()
    records = chain(device, 5)
    assert len(upload(county, device, records).json()["accepted"]) == 5
    assert checkpoint(county, device, 5, records[-1]["hash"]).json()["status"] == "ok"

    code = county.op_a.rekey(device.device_id, "SD card replaced")
    # The old token stops at once.
    r = upload(county, device, [record(device, 6, records[-1]["hash"])])
    assert r.status_code == 401, r.text
    # The code is bound to this device: it cannot enrol a new one at the point.
    r = register(county, code, new_id(), device.point_id, Ed25519PrivateKey.generate())
    assert r.status_code == 403, r.text
    new_key = Ed25519PrivateKey.generate()
    r = register(county, code, device.device_id, device.point_id, new_key)
    assert r.status_code == 201, r.text
    fresh = Device(device.device_id, device.point_id, new_key, r.json()["token"])

    # The chain continues under the new key ...
    rec6 = record(fresh, 6, records[-1]["hash"])
    assert upload(county, fresh, [rec6]).json()["accepted"] == [rec6["record_id"]]
    # ... and a record signed with the old (possibly copied) key after the re-key is forged.
    rec7 = record(fresh, 7, rec6["hash"], key=device.key)
    result = upload(county, fresh, [rec7]).json()
    assert result["rejected"] and "forged" in result["rejected"][0]["reason"]
    # Old records still verify: a resend of them is a duplicate, not a forgery.
    again = upload(county, fresh, records[:2]).json()
    assert sorted(again["duplicate"]) == sorted(r["record_id"] for r in records[:2])


def test_secrets_are_not_taken_from_argv(county: County) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "sync.platform", "serve", "--admin-token", "s3cret"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "visible" in refused.stderr
    # The running platform got its token from a file: `ps` does not show it.
    assert county.platform.proc is not None
    cmdline = Path(f"/proc/{county.platform.proc.pid}/cmdline").read_bytes()
    assert ADMIN_TOKEN.encode() not in cmdline

    # The operator CLI reads its token from stdin and prints a code that enrols a terminal.
    point = county.point()
    out = subprocess.run(
        [sys.executable, "-m", "sync.platform", "issue-code", "--platform", county.url,
         "--token-file", "-", "--point", point],
        cwd=REPO, capture_output=True, text=True, timeout=60, input=county.op_a.token + "\n",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    import json

    code = json.loads(out.stdout)["code"]
    r = register(county, code, new_id(), point, Ed25519PrivateKey.generate())
    assert r.status_code == 201, r.text


def test_tokens_and_codes_are_stored_hashed(sqlite_county: County) -> None:
    county = sqlite_county
    point = county.point()
    code = county.op_a.issue_code(point)
    key = Ed25519PrivateKey.generate()
    token = register(county, code, new_id(), point, key).json()["token"]
    db_files = Path(county.platform.db_url.removeprefix("sqlite:///")).parent.glob("platform.db*")
    blob = b"".join(p.read_bytes() for p in db_files)
    for secret in (ADMIN_TOKEN, county.op_a.token, code, token):
        assert secret.encode() not in blob, "a secret is stored in the clear"
