"""Security checks as tests: loopback only, every state-changing route needs the caregiver
session, PIN guessing locks out, secrets never reach logs or /metrics, no plaintext face
templates in the database file or in what is uploaded, and the platform refuses records signed
with another device's key and a batch replayed by another device.

Documented exceptions to "state-changing needs a session":
- POST /caregiver/login is how the session is obtained: it needs the CSRF token instead, and is
  locked after wrong PINs (per caregiver) and rate-limited (per screen);
- POST /caregiver/logout only drops the caller's own cookie (CSRF token required);
- POST /api/simulate/tap exists only while a simulated reader is configured and answers only
  loopback peers (403 from any other address).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import socket
import struct
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from starlette.routing import Mount

from kiosk.api.factory import create_app
from kiosk.config import load_config
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from models.db import Store
from sync.client import PlatformClient
from sync.platform.admin_client import enrol_with_admin
from sync.platform.app import create_platform_app
from sync.signing import generate_device_key
from sync.uploader import Uploader
from tests.faults.harness import KioskProc
from tests.support.config import noon_zone
from tests.support.outbox import add_records, seed_elders
from tests.support.paths import REPO
from tests.support.roster import elder_row
from tests.support.wait import wait_until

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN_EXCEPTIONS = {"/caregiver/login", "/caregiver/logout"}
PIN, WRONG_PIN = "739146", "864213"


# ----------------------------------------------------------------------------- listening


def listening_addresses(pid: int) -> set[str]:
    """Local addresses of the process's listening TCP sockets (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(cols[1].split(":")[0])
            words = struct.unpack(f"<{len(raw) // 4}I", raw)
            found.add(socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words)))
    return found


def test_default_config_and_running_daemon_listen_on_loopback_only(tmp_path: Path) -> None:
    assert load_config(REPO / "config.yaml").web.host in ("127.0.0.1", "::1", "localhost")
    kiosk = KioskProc(tmp_path)  # web section without host: the default
    kiosk.seed([elder_row(1)])
    kiosk.start()
    try:
        assert kiosk.proc is not None
        addresses = listening_addresses(kiosk.proc.pid)
        assert addresses, "found no listening socket at all: the check would prove nothing"
        assert addresses <= {"127.0.0.1", "::1"}, addresses
    finally:
        kiosk.kill()


# ----------------------------------------------------------------------------- routes


def all_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (FastAPI >= 0.165 keeps them
    as `_IncludedRouter` objects instead of copying their routes)."""
    out: list[tuple[str, set[str]]] = []
    for route in routes:
        if hasattr(route, "original_router"):
            out += all_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            continue  # static files: GET only
        else:
            out.append((prefix + route.path, set(route.methods or ())))
    return out


def state_changing_routes(app: Any) -> list[tuple[str, str]]:
    return sorted(
        (m, path) for path, methods in all_routes(app.routes) for m in methods & STATE_CHANGING
    )


def test_every_state_changing_route_needs_the_caregiver_session(
    services: KioskServices, figures: dict[str, Any]
) -> None:
    app = create_app(services)
    routes = state_changing_routes(app)
    assert ("POST", "/api/manual-checkin") in routes  # the enumeration finds the real ones
    anonymous = TestClient(app, raise_server_exceptions=False)
    anonymous.get("/caregiver/login")  # a valid CSRF cookie: only the session is missing
    csrf = anonymous.cookies.get("kiosk_csrf")
    assert csrf
    checked = 0
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "E0001", path)
        for body in ({"csrf": csrf, "elder_id": "E0001", "reason": "forgot_card"}, {}):
            resp = anonymous.request(
                method, url, data=body, headers={"x-csrf-token": csrf}, follow_redirects=False
            )
            checked += 1
            if path == "/api/simulate/tap":
                continue  # exception, checked below
            if path in LOGIN_EXCEPTIONS:
                assert resp.status_code < 500
                continue
            assert resp.status_code in (401, 403, 303), f"{method} {path}: {resp.status_code}"
            if resp.status_code == 303:
                assert resp.headers["location"].startswith("/caregiver/login")
    # Without the CSRF token even the login refuses.
    bare = TestClient(app, raise_server_exceptions=False)
    assert (
        bare.post("/caregiver/login", data={"caregiver_id": "C001", "pin": PIN}).status_code == 403
    )
    # The simulated reader answers loopback only.
    # A real peer sends a real Host: the kiosk refuses unknown names (DNS rebinding) first.
    lan = TestClient(
        app,
        raise_server_exceptions=False,
        client=("192.168.1.50", 40000),
        base_url="http://127.0.0.1:8080",
    )
    resp = lan.post("/api/simulate/tap", json={"uid": elder_row(1).card_uid})
    assert resp.status_code == 403, resp.text
    local = TestClient(app, client=("127.0.0.1", 40000), base_url="http://127.0.0.1:8080")
    assert local.post("/api/simulate/tap", json={"uid": elder_row(1).card_uid}).status_code == 202
    figures["security_routes_checked"] = len(routes)
    figures["security_unauthenticated_requests"] = checked


def test_pin_guessing_is_locked_out_over_http(services: KioskServices) -> None:
    book = CaregiverBook(services.store, services.config.ui, services.now)
    cid = book.add("王秀兰", PIN).caregiver_id
    client = TestClient(create_app(services), raise_server_exceptions=False)
    client.get("/caregiver/login")
    csrf = client.cookies.get("kiosk_csrf")
    statuses = []
    for guess in range(8):
        resp = client.post(
            "/caregiver/login",
            data={"csrf": csrf, "caregiver_id": cid, "pin": f"{100000 + guess}"},
            headers={"accept": "application/json"},
        )
        statuses.append(resp.status_code)
    assert 429 in statuses, statuses
    resp = client.post(
        "/caregiver/login",
        data={"csrf": csrf, "caregiver_id": cid, "pin": PIN},
        headers={"accept": "application/json"},
    )
    assert resp.status_code in (401, 429) and not resp.json()["ok"], resp.text  # right PIN, locked


# ----------------------------------------------------------------------------- secrets


def secret_forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode()]


@pytest.mark.slow
def test_secrets_never_reach_logs_metrics_or_health(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    from tests.support.platform import start_platform

    platform = start_platform(f"sqlite:///{tmp_path / 'platform.db'}", tmp_path)
    try:
        key = generate_device_key(tmp_path / "creds" / "device-key")
        device_id = "sec-" + uuid.uuid4().hex[:8]
        # The point in the kiosk's zone: the platform refuses records whose service_date is
        # not the check-in's day there (the kiosk below runs in noon_zone()).
        token = platform.register(device_id, "pt-sec", key, noon_zone())
        face_key = base64.b64encode(os.urandom(32)).decode()
        pem_lines = [
            line
            for line in (tmp_path / "creds" / "device-key").read_text().splitlines()
            if not line.startswith("-----")
        ]
        (tmp_path / "creds" / "device-token").write_text(token)
        (tmp_path / "creds" / "device-token").chmod(0o600)  # a readable token is refused
        kiosk = KioskProc(
            tmp_path / "k",
            extra_config=(
                f"platform: {{url: '{platform.url}', upload_interval_s: 5, "
                f"public_key: '{platform.public_key}'}}\n"
                "logging: {level: DEBUG}\n"
            ),
            env={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds"), "KIOSK_FACE_KEY": face_key},
        )
        kiosk.config.write_text(
            kiosk.config.read_text().replace(
                "device: {device_id: proc-test}", f"device: {{device_id: {device_id}}}"
            )
        )
        kiosk.seed([elder_row(i) for i in range(1, 4)])
        store = Store(kiosk.db_path)
        cid = (
            CaregiverBook(
                store,
                load_config(kiosk.config).ui,
                lambda: __import__("datetime").datetime.now(load_config(kiosk.config).site.tz),
            )
            .add("王秀兰", PIN)
            .caregiver_id
        )
        store.close()
        kiosk.start()
        with httpx.Client(base_url=kiosk.base) as c:
            for i in range(1, 4):
                c.post("/api/simulate/tap", json={"uid": elder_row(i).card_uid})
            c.get("/caregiver/login")
            csrf = c.cookies.get("kiosk_csrf")
            for pin in (WRONG_PIN, PIN):
                c.post("/caregiver/login", data={"csrf": csrf, "caregiver_id": cid, "pin": pin})
            wait_until(
                lambda: platform.records(device_id)["count"] == 3, "the daemon to upload", 60
            )
            texts = {
                "metrics": c.get("/metrics").text,
                "health": c.get("/api/health").text,
            }
        kiosk.terminate()
        texts["log"] = kiosk.log_path.read_text("utf-8", "replace")
        assert "sync" in texts["log"].lower() or "upload" in texts["log"].lower()
        secrets = {"device token": token, "face key": face_key, "PIN": PIN, "wrong PIN": WRONG_PIN}
        secrets |= {
            f"device key line {i}": line for i, line in enumerate(pem_lines) if len(line) > 8
        }
        leaks = [
            f"{what} in {where}"
            for what, value in secrets.items()
            for where, text in texts.items()
            for form in secret_forms(value)
            if form in text
        ]
        assert not leaks, leaks
        figures["security_secret_scans"] = len(secrets) * len(texts)
    finally:
        platform.stop()


# ----------------------------------------------------------------------------- biometrics


def vector_forms(vec: np.ndarray) -> list[bytes]:
    forms = [vec.astype("<f4").tobytes(), vec.astype("<f8").tobytes(), vec.astype(">f4").tobytes()]
    forms += [base64.b64encode(f) for f in forms]
    forms.append(json.dumps([round(float(x), 6) for x in vec[:4]])[1:-1].encode())
    forms.append(f"{float(vec[0]):.6f}".encode())
    return [f[:32] for f in forms]  # any 32-byte run of them is enough to find


class Capture(TestClient):
    """The platform in-process, remembering every upload body."""

    bodies: list[bytes]

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        if request.url.path == "/v1/records":
            self.bodies.append(gzip.decompress(request.read()))
        return super().send(request, **kwargs)


def platform_client(app: Any, token: str) -> tuple[PlatformClient, Capture]:
    client = PlatformClient("http://platform.test", token)
    capture = Capture(
        app, base_url="http://platform.test", headers={"Authorization": f"Bearer {token}"}
    )
    capture.bodies = []
    client._http = capture
    return client, capture


def test_no_plaintext_face_template_in_the_database_or_in_uploads(
    store: Store, tmp_path: Path, figures: dict[str, Any]
) -> None:
    import datetime as dt

    seed_elders(store, 3)
    rng = np.random.default_rng(7)
    vec = rng.uniform(-0.3, 0.3, 128).astype(np.float32)
    templates = TemplateStore(store, FaceKey.load(tmp_path / "data"))
    templates.add(
        "E0001",
        vec,
        quality=1.0,
        face_px=200,
        consent_ref="C-1",
        at=dt.datetime.now(dt.UTC),
        source="test",
    )
    assert np.allclose(templates.for_elder("E0001")[0].encoding, vec)  # stored, and readable

    admin = "admin-" + uuid.uuid4().hex
    app = create_platform_app(f"sqlite:///{tmp_path / 'p.db'}", Ed25519PrivateKey.generate(), admin)
    key = generate_device_key(tmp_path / "dev.key")
    token = enrol_with_admin(TestClient(app), admin, "bio-dev", "pt", key.public_key_b64)
    client, capture = platform_client(app, token)
    add_records(store, "bio-dev", 3, signer=key.sign_record)  # signed with the enrolled key
    assert Uploader(store, client, key, "bio-dev").run_round().accepted == 3

    files = {p.name: p.read_bytes() for p in store.db_path.parent.glob("kiosk.db*")}
    files |= {f"upload {i}": b for i, b in enumerate(capture.bodies)}
    files |= {p.name: p.read_bytes() for p in tmp_path.glob("p.db*")}
    assert capture.bodies, "nothing was uploaded: the scan would prove nothing"
    found = [name for name, data in files.items() for form in vector_forms(vec) if form in data]
    assert not found, f"plaintext face template bytes in: {found}"
    for body in capture.bodies:
        text = body.decode().lower()
        assert not any(w in text for w in ("encoding", "template", "embedding", "snapshot")), text[
            :300
        ]
    figures["security_biometric_scans"] = len(files)


# ----------------------------------------------------------------------------- platform keys


def test_platform_rejects_other_keys_and_batches_replayed_by_another_device(
    store: Store, tmp_path: Path
) -> None:
    admin = "admin-" + uuid.uuid4().hex
    app = create_platform_app(f"sqlite:///{tmp_path / 'p.db'}", Ed25519PrivateKey.generate(), admin)
    operator = TestClient(app, headers={"authorization": f"Bearer {admin}"})
    keys, tokens = {}, {}
    for dev in ("dev-a", "dev-b"):
        keys[dev] = generate_device_key(tmp_path / f"{dev}.key")
        tokens[dev] = enrol_with_admin(operator, admin, dev, f"pt-{dev}", keys[dev].public_key_b64)
    seed_elders(store, 10)
    add_records(store, "dev-a", 3)

    # Signed with B's key, uploaded as A: every record refused as forged, nothing counted.
    client_a, capture = platform_client(app, tokens["dev-a"])
    forged = Uploader(store, client_a, keys["dev-b"], "dev-a").run_round()
    assert forged.rejected == 3 and forged.accepted == 0
    assert operator.get("/v1/admin/devices/dev-a/records").json()["count"] == 0
    kinds = {
        a["kind"] for a in operator.get("/v1/admin/alerts", params={"device_id": "dev-a"}).json()
    }
    assert "forged" in kinds, kinds

    # A's genuine batch, then the same bytes replayed with B's token: refused, B has nothing.
    genuine = capture.bodies[-1]
    replay = TestClient(app, headers={"authorization": f"Bearer {tokens['dev-b']}"})
    resp = replay.post(
        "/v1/records",
        content=gzip.compress(genuine),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert resp.status_code == 403, resp.text
    # ... and relabelled as B's batch: the records still name A, refused as foreign.
    relabelled = json.loads(genuine)
    relabelled["device_id"] = "dev-b"
    resp = replay.post(
        "/v1/records",
        content=gzip.compress(json.dumps(relabelled).encode()),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert resp.status_code == 200 and not resp.json().get("accepted"), resp.text
    assert operator.get("/v1/admin/devices/dev-b/records").json()["count"] == 0
    assert operator.get("/v1/admin/devices/dev-a/records").json()["count"] == 0
