"""Caregivers (scrypt PINs, lock, rate limit), the signed session, CSRF, manual check-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from kiosk.api.factory import create_app
from kiosk.cli.main import app as cli_app
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook, PinError, hash_pin, verify_pin
from models.tables import AuditEvent, Caregiver, MealRecord
from tests.support.roster import Clock
from tests.support.ui import PIN, csrf_of
from tests.support.ui import try_sign_in as sign_in


@pytest.fixture
def book(services: KioskServices) -> CaregiverBook:
    book = CaregiverBook(services.store, services.config.ui, services.now)
    book.add("王秀兰", PIN, phone="13900001111", role="in_charge")
    return book


@pytest.fixture
def client(services: KioskServices, book: CaregiverBook) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def test_pins_are_salted_scrypt_hashes(services: KioskServices, book: CaregiverBook) -> None:
    a, b = hash_pin(PIN), hash_pin(PIN)
    assert a != b and a.startswith("scrypt$")
    assert verify_pin(PIN, a) and not verify_pin("2581", a)
    with services.store.read() as s:
        stored = s.scalar(select(Caregiver.pin_hash))
    assert PIN not in stored and verify_pin(PIN, stored)
    for bad in ("12", "1111", "1234", "abcd"):
        with pytest.raises(PinError):
            book.add("x", bad)


def test_lock_after_repeated_failures(
    services: KioskServices, book: CaregiverBook, clock: Clock
) -> None:
    for left in (4, 3, 2, 1):
        assert (
            book.sign_in("C001", "9999", client=f"c{left}").message
            == f"密码不对，还可以试 {left} 次"
        )
    locked = book.sign_in("C001", "9999", client="c0")
    assert not locked.ok and locked.locked_until is not None
    # even the right PIN is refused while locked
    assert "锁定" in book.sign_in("C001", PIN, client="c5").message
    clock.set("11:46")  # lock is 15 minutes from 11:30
    assert book.sign_in("C001", PIN, client="c6").ok
    with services.store.read() as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(AuditEvent.kind.like("pin_%"))))
    assert kinds.count("pin_failed") == 5 and kinds.count("pin_locked") == 1


def test_one_screen_is_rate_limited_whoever_it_names(book: CaregiverBook) -> None:
    for _ in range(10):
        book.sign_in("nobody", "9999", client="screen")
    assert book.sign_in("C001", PIN, client="screen").message == "尝试次数太多，请一分钟后再试"
    assert book.sign_in("C001", PIN, client="other").ok


def test_manual_pages_need_the_caregiver_session(client: TestClient) -> None:
    resp = client.get("/manual", headers={"accept": "text/html"}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/caregiver/login?next=/manual"
    assert client.get("/api/elders", params={"q": "W"}).status_code == 401
    assert client.post("/api/manual-checkin", json={"elder_id": "E0001"}).status_code == 401


def test_wrong_then_right_pin_then_manual_checkin(
    client: TestClient, services: KioskServices
) -> None:
    assert "密码不对，还可以试 4 次" in sign_in(client, "9999")
    assert sign_in(client) == "ok"
    page = client.get("/manual", params={"q": "wxy"})  # pinyin initials of 王秀英
    assert "王秀英" in page.text
    assert "1411**********0000" in page.text  # ID numbers masked even for the caregiver
    resp = client.post(
        "/manual",
        data={"csrf": csrf_of(page.text), "elder_id": "E0001", "reason": "forgot_card"},
    )
    assert "王秀英，签到成功，请用餐" in resp.text
    with services.store.read() as s:
        rec = s.scalars(select(MealRecord)).one()
    assert (rec.method, rec.caregiver_id, rec.reason) == ("manual", "C001", "forgot_card")


def test_state_changes_need_the_csrf_token(client: TestClient, services: KioskServices) -> None:
    assert sign_in(client) == "ok"
    resp = client.post("/manual", data={"elder_id": "E0001", "reason": "forgot_card"})
    assert resp.status_code == 403
    resp = client.post(
        "/api/manual-checkin",
        json={"elder_id": "E0001", "reason": "forgot_card"},
        headers={"x-csrf-token": "forged.token"},
    )
    assert resp.status_code == 403
    token = client.cookies.get("kiosk_csrf")
    resp = client.post(
        "/api/manual-checkin",
        json={"elder_id": "E0002", "reason": "delivered"},
        headers={"x-csrf-token": token},
    )
    assert resp.json()["outcome"] == "accepted" and resp.json()["method"] == "manual"
    # the login form itself is CSRF-protected too
    resp = client.post("/caregiver/login", data={"caregiver_id": "C001", "pin": PIN})
    assert resp.status_code == 403


def test_a_forged_session_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set("kiosk_session", "eyJjaWQiOiJDMDAxIn0.AAAA")
    assert client.get("/api/elders", params={"q": "W"}).status_code == 401


def test_cli_adds_a_caregiver_with_a_hashed_pin(tmp_path: Path) -> None:
    from tests.support.config import BASE_CONFIG

    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG, encoding="utf-8")
    base = ["--config", str(config), "--data-dir", str(tmp_path / "d"), "caregiver"]
    runner = CliRunner()
    result = runner.invoke(cli_app, [*base, "add", "李桂香", "--pin", "1357", "--in-charge"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli_app, [*base, "add", "赵大妈"], input="2468\n2468\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli_app, [*base, "list"])
    assert "C001" in result.output and "负责人" in result.output and "C002" in result.output
    assert runner.invoke(cli_app, [*base, "add", "x", "--pin", "0000"]).exit_code == 2
