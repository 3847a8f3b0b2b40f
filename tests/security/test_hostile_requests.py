"""Hostile requests to the kiosk's web app (issue 12.3-4, kiosk side, and 12.12 second half,
12.17 Host header): refused before the body is read, capped while it streams, and every one a
4xx with a message, never a 500.

The streaming and X-Forwarded-For attacks go to the daemon's real uvicorn server (the one
`kiosk run` starts), because the in-process test transport buffers bodies and has no proxy
headers of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kiosk.config import KioskConfig, parse_config
from kiosk.runtime.daemon import Daemon
from kiosk.runtime.services import KioskServices
from tests.support.config import BASE_CONFIG
from tests.support.net import free_port
from tests.support.security import PIN
from tests.support.ui import csrf_of, sign_in_client

MB = 1024 * 1024


@pytest.fixture
def config() -> KioskConfig:  # overrides the suite's: a free port for the real server
    return parse_config(BASE_CONFIG + f"web:\n  port: {free_port()}\n")


@pytest.fixture
def served(services: KioskServices, book: Any) -> Iterator[str]:
    """The daemon's own uvicorn server for these services, in a thread; yields its base URL."""
    daemon = Daemon(services)
    thread = threading.Thread(target=daemon.server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not daemon.server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "web server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{services.config.web.port}"
    finally:
        daemon.server.should_exit = True
        thread.join(timeout=10)


class Stream:
    """A request body that counts how much of it the server made us send."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            self.sent += self.chunk
            yield b"a" * self.chunk


# ----------------------------------------------------------------------------- body caps


@pytest.mark.parametrize("path", ["/api/simulate/tap", "/caregiver/login", "/notices/menu"])
def test_declared_huge_body_is_refused_before_reading(web: TestClient, path: str) -> None:
    r = web.post(
        path,
        content=b"{}",
        headers={"content-length": str(400 * MB), "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text


@pytest.mark.parametrize("path", ["/api/simulate/tap", "/caregiver/login"])
def test_streamed_body_is_cut_at_the_cap(served: str, path: str) -> None:
    """A chunked body with no Content-Length: the server stops reading at the route's cap."""
    body = Stream(64 * MB)
    try:
        r = httpx.post(
            served + path,
            content=iter(body),
            headers={"content-type": "application/json", "accept": "application/json"},
            timeout=30,
        )
        status = r.status_code
    except httpx.TransportError:  # the server answered 413 and closed while we were sending
        status = 413
    assert status == 413
    assert body.sent < 8 * MB, f"the server read {body.sent // MB} MB before refusing"


def test_simulate_refuses_other_peers_before_reading(app: Any) -> None:
    with TestClient(app, client=("192.168.1.50", 40000), base_url="http://127.0.0.1") as lan:
        r = lan.post(
            "/api/simulate/tap", content=b"x" * 512, headers={"content-type": "text/plain"}
        )
    assert r.status_code == 403, r.text  # not 422: the body was never parsed


# ----------------------------------------------------------------------------- 4xx, not 500


def test_deeply_nested_json_to_the_login_is_a_400(app: Any) -> None:
    depth = 30_000  # under the 64 KiB form cap, far over the JSON parser's recursion limit
    body = '{"pin": ' + "[" * depth + "]" * depth + "}"
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/caregiver/login", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        r = c.post(
            "/caregiver/login",
            json={"caregiver_id": {"$ne": 1}, "pin": ["1"]},
        )
        assert r.status_code == 400, r.text


@pytest.mark.parametrize(
    "key", ["menu|x", "menu|2026-13-45|lunch", "menu|2026-12-01|lunch|extra", "menu||"]
)
def test_unexpected_menu_form_keys_are_a_422(app: Any, key: str) -> None:
    with TestClient(app, raise_server_exceptions=False) as c:
        csrf = sign_in_client(c, "/manual", PIN)
        r = c.post(
            "/notices/menu",
            data={"csrf": csrf, key: "米饭", "menu|2026-12-01|lunch": "面条"},
            follow_redirects=False,
        )
    assert r.status_code == 422, r.text
    assert "menu" in r.json()["detail"] or "slot" in r.json()["detail"]


def test_non_ascii_bearer_is_not_a_500(app: Any) -> None:
    header = {"authorization": "Bearer \u00e9\u00ff".encode("latin-1")}
    with TestClient(app, raise_server_exceptions=False) as c:
        for method, path in [("GET", "/api/health"), ("GET", "/metrics"), ("POST", "/manual")]:
            r = c.request(method, path, headers=header)
            assert r.status_code < 500, (path, r.status_code, r.text)


# ----------------------------------------------------------------------------- Host header


def test_foreign_host_header_is_refused(app: Any) -> None:
    """DNS rebinding: a page served under another name, resolving to the kiosk."""
    with TestClient(app, client=("127.0.0.1", 40000), base_url="http://evil.example") as c:
        assert c.get("/api/health").status_code == 400
    with TestClient(app, client=("127.0.0.1", 40000), base_url="http://127.0.0.1:8080") as c:
        assert c.get("/api/health").status_code in (200, 503)


def test_cross_origin_post_is_refused(app: Any) -> None:
    with TestClient(app, client=("127.0.0.1", 40000), base_url="http://127.0.0.1:8080") as c:
        token = csrf_of(c.get("/caregiver/login").text)
        r = c.post(
            "/caregiver/login",
            data={"csrf": token, "caregiver_id": "C001", "pin": "739146"},
            headers={"origin": "http://evil.example"},
            follow_redirects=False,
        )
        assert r.status_code == 403, r.text
        r = c.post(
            "/caregiver/login",
            data={"csrf": token, "caregiver_id": "C001", "pin": "739146"},
            headers={"origin": "http://127.0.0.1:8080"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text


# ----------------------------------------------------------------------------- X-Forwarded-For


def test_forwarded_for_does_not_escape_the_per_screen_limit(served: str) -> None:
    """From this machine, a new X-Forwarded-For per attempt must not look like a new screen."""
    from kiosk.touchscreen.caregivers import CLIENT_ATTEMPTS

    with httpx.Client(base_url=served, timeout=30) as c:
        token = csrf_of(c.get("/caregiver/login").text)
        messages = []
        for i in range(CLIENT_ATTEMPTS + 2):
            r = c.post(
                "/caregiver/login",
                data={"csrf": token, "caregiver_id": "C999", "pin": "864213"},
                headers={"accept": "application/json", "x-forwarded-for": f"10.9.{i}.1"},
            )
            messages.append(r.json()["message"])
    assert "尝试次数太多" in messages[-1], messages
