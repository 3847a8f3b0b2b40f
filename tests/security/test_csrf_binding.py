"""The CSRF token is bound to the session (issue 12.13): a token and cookie taken from another
browser do not go with this browser's session."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.security import PIN
from tests.support.ui import csrf_of, sign_in_client


def test_token_from_another_browser_is_refused(web: TestClient, app: Any) -> None:
    sign_in_client(web, "/manual", PIN)
    session = web.cookies.get("kiosk_session")
    # The attacker's own browser: a perfectly valid CSRF cookie and token, no session.
    with TestClient(app) as attacker:
        foreign = csrf_of(attacker.get("/caregiver/login").text)
    with TestClient(app, cookies={"kiosk_session": session, "kiosk_csrf": foreign}) as mixed:
        r = mixed.post(
            "/api/manual-checkin",
            data={"csrf": foreign, "elder_id": "E0001", "reason": "忘带卡"},
            headers={"accept": "application/json"},
        )
    assert r.status_code == 403, f"foreign CSRF token accepted: {r.status_code} {r.text}"


def test_own_token_still_works(web: TestClient) -> None:
    csrf = sign_in_client(web, "/manual", PIN)
    r = web.post(
        "/api/manual-checkin",
        data={"csrf": csrf, "elder_id": "E0001", "reason": "忘带卡"},
        headers={"accept": "application/json"},
    )
    assert r.status_code != 403, r.text
