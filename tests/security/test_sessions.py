"""Caregiver sessions are revocable server-side (issue 12.11): a copied session cookie stops
working after logout, after `kiosk caregiver remove` and after `kiosk caregiver set-pin`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kiosk.runtime.services import KioskServices
from tests.support.config import BASE_CONFIG
from tests.support.security import PIN
from tests.support.ui import sign_in_client

JSON = {"accept": "application/json"}


def _stolen(web: TestClient) -> dict[str, str]:
    """Every cookie of a signed-in browser, as someone copying them would have them."""
    return {name: value for name, value in web.cookies.items()}


def _works(app: Any, cookies: dict[str, str]) -> bool:
    with TestClient(app, cookies=cookies) as other:
        r = other.get("/api/elders", params={"q": "王"}, headers=JSON)
        assert r.status_code in (200, 401), r.text
        return r.status_code == 200


def _kiosk(services: KioskServices, tmp_path: Path, *args: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    result = CliRunner().invoke(
        __import__("kiosk.cli.main", fromlist=["app"]).app,
        ["--config", str(config), "--data-dir", str(services.data_dir), *args],
    )
    assert result.exit_code == 0, result.output


def test_copied_cookie_dies_at_logout(web: TestClient, app: Any) -> None:
    csrf = sign_in_client(web, "/manual", PIN)
    cookies = _stolen(web)
    assert _works(app, cookies)
    r = web.post("/caregiver/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert not _works(app, cookies), "the session outlived logout"


def test_session_dies_when_the_caregiver_is_removed(
    web: TestClient, app: Any, services: KioskServices, tmp_path: Path
) -> None:
    sign_in_client(web, "/manual", PIN)
    cookies = _stolen(web)
    assert _works(app, cookies)
    _kiosk(services, tmp_path, "caregiver", "remove", "C001")
    assert not _works(app, cookies), "a removed caregiver's session still works"
    assert web.get("/api/elders", params={"q": "王"}, headers=JSON).status_code == 401


def test_session_dies_when_the_pin_changes(
    web: TestClient, app: Any, services: KioskServices, tmp_path: Path
) -> None:
    sign_in_client(web, "/manual", PIN)
    cookies = _stolen(web)
    _kiosk(services, tmp_path, "caregiver", "set-pin", "C001", "--pin", "951753")
    assert not _works(app, cookies), "a session opened under the old PIN still works"
    sign_in_client(web, "/manual", "951753")  # the new PIN opens a new session
    assert web.get("/api/elders", params={"q": "王"}, headers=JSON).status_code == 200


def test_other_caregivers_keep_their_session(web: TestClient, app: Any) -> None:
    with TestClient(app) as second:
        sign_in_client(second, "/manual", "518293", "C002")
        sign_in_client(web, "/manual", PIN)
        csrf = web.cookies.get("kiosk_csrf")
        web.post("/caregiver/logout", data={"csrf": csrf}, follow_redirects=False)
        assert second.get("/api/elders", params={"q": "王"}, headers=JSON).status_code == 200


@pytest.mark.parametrize("cookie", ["kiosk_session", "kiosk_csrf"])
def test_non_ascii_cookie_is_refused_not_a_crash(web: TestClient, cookie: str) -> None:
    """A cookie with bytes outside ASCII reaches the signature check: 401/403, never a 500."""
    sign_in_client(web, "/manual", PIN)
    raw = "caf\u00e9.\u00ff\u00fe".encode("latin-1")
    headers: dict[str, Any] = {"cookie": cookie.encode() + b"=" + raw, **JSON}
    r = web.get("/api/elders", params={"q": "王"}, headers=headers)
    assert r.status_code in (401, 403), r.text
    r = web.post(
        "/api/manual-checkin",
        headers={**headers, "x-csrf-token": "\u00e9\u00e9".encode("latin-1")},
        data={"elder_id": "E0001"},
    )
    assert r.status_code in (401, 403), r.text
