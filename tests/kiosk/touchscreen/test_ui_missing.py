"""Who is missing: regulars (N of the last M service days) not yet served this slot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kiosk.api.factory import create_app
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.masking import mask_id_number, mask_name, mask_phone
from kiosk.touchscreen.missing import missing_diners
from models.roster import apply_rows
from tests.support.roster import TZ, Clock, elder_row


@pytest.fixture
def client(services: KioskServices) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def eat(services: KioskServices, clock: Clock, n: int, day: dt.date) -> None:
    clock.now = dt.datetime.combine(day, dt.time(11, 30), tzinfo=TZ)
    result = services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=elder_row(n).card_uid))
    assert result.accepted, result.message


@pytest.fixture
def history(services: KioskServices, clock: Clock) -> None:
    """Five past lunch days. 王秀英(1) came every day, 李建国(2) three days, 老人6 once."""
    apply_rows(services.store, [elder_row(6)], clock(), source="test")
    days = [dt.date(2026, 11, 26) + dt.timedelta(days=i) for i in range(5)]  # 26..30
    for i, day in enumerate(days):
        eat(services, clock, 1, day)
        if i in (0, 2, 4):
            eat(services, clock, 2, day)
        if i == 4:
            eat(services, clock, 6, day)
    clock.set("11:30")  # today, 2 December, lunch open


def test_masking() -> None:
    assert mask_name("王秀英") == "王*英"
    assert mask_name("王英") == "王*"
    assert mask_name("欧阳秀英") == "欧**英"
    assert mask_id_number("142601195003071234") == "1426**********1234"
    assert mask_id_number("141129********0000") == "1411**********0000"
    assert mask_phone("13812345678") == "138****5678"


@pytest.mark.usefixtures("history")
def test_regulars_who_have_not_come(services: KioskServices, clock: Clock) -> None:
    report = missing_diners(services.config, services.store, clock(), min_days=3, of_last=5)
    assert [m.name for m in report.missing] == ["李建国", "王秀英"]  # oldest last visit first
    assert report.regulars == 2
    assert len(report.service_days) == 5
    wang = report.missing[1]
    assert (wang.days_eaten, wang.group_name, wang.contact_phone) == (5, "一组", "13800000000")
    # stricter: every one of the last 5 days
    report = missing_diners(services.config, services.store, clock(), min_days=5, of_last=5)
    assert [m.name for m in report.missing] == ["王秀英"]
    # looser window: only the last 2 service days, 1 of them
    report = missing_diners(services.config, services.store, clock(), min_days=1, of_last=2)
    assert sorted(m.name for m in report.missing) == ["李建国", "王秀英", "老人6"]


@pytest.mark.usefixtures("history")
def test_the_list_shrinks_when_one_comes(services: KioskServices, clock: Clock) -> None:
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=elder_row(1).card_uid))
    report = missing_diners(services.config, services.store, clock(), min_days=3, of_last=5)
    assert [m.name for m in report.missing] == ["李建国"]


def test_no_history_no_regulars(services: KioskServices, clock: Clock) -> None:
    report = missing_diners(services.config, services.store, clock())
    assert (report.regulars, report.missing) == (0, [])


@pytest.mark.usefixtures("history")
def test_api_and_page_mask_names_and_phones_without_a_session(client: TestClient) -> None:
    body = client.get("/api/missing", params={"min_days": 3, "of_last": 5}).json()
    assert body["count"] == 2 and body["masked"] is True
    assert [e["name"] for e in body["missing"]] == ["李*国", "王*英"]
    assert body["missing"][0]["phone"] == "138****0000"
    page = client.get("/missing?min_days=3&of_last=5")
    assert page.status_code == 200
    assert "王*英" in page.text and "王秀英" not in page.text
    assert "13800000000" not in page.text
