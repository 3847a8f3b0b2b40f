"""PIN guessing (issue 12.12): the attempt count is atomic, so nine wrong PINs sent at once get
five checked and then the lock; the per-screen limit trusts X-Forwarded-For only from proxies
named in `web.trusted_proxies`."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from kiosk.runtime.services import KioskServices
from models.tables import AuditEvent, Caregiver
from tests.support.security import PIN, WRONG_PIN
from tests.support.ui import csrf_of

CONCURRENT = 9


def _failed_checks(services: KioskServices) -> int:
    with services.store.read() as s:
        return len(list(s.scalars(select(AuditEvent).where(AuditEvent.kind == "pin_failed"))))


def test_nine_concurrent_wrong_pins_check_only_five(app: Any, services: KioskServices) -> None:
    clients = [TestClient(app) for _ in range(CONCURRENT)]
    tokens = [csrf_of(c.get("/caregiver/login").text) for c in clients]
    barrier = threading.Barrier(CONCURRENT)
    answers: list[int] = []

    def guess(client: TestClient, token: str) -> None:
        barrier.wait()
        r = client.post(
            "/caregiver/login",
            data={"csrf": token, "caregiver_id": "C001", "pin": WRONG_PIN},
            headers={"accept": "application/json"},
        )
        answers.append(r.status_code)

    threads = [threading.Thread(target=guess, args=ct) for ct in zip(clients, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    limit = services.config.ui.pin_max_failures
    assert sorted(set(answers)) <= [401, 429], answers
    assert _failed_checks(services) == limit, "more PINs were checked than the limit allows"
    with services.store.read() as s:
        row = s.get(Caregiver, "C001")
        assert row is not None and row.locked_until is not None, "not locked after the limit"
    # Locked: even the right PIN is refused now.
    with TestClient(app) as c:
        token = csrf_of(c.get("/caregiver/login").text)
        r = c.post(
            "/caregiver/login",
            data={"csrf": token, "caregiver_id": "C001", "pin": PIN},
            headers={"accept": "application/json"},
        )
        assert r.status_code == 429, r.text
        assert "锁定" in json.loads(r.text)["message"]
