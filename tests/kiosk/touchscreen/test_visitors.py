"""Visitors (roaming elders, 全城通) on the touchscreen: the headcount's 本点/外点 split and the
caregiver's manual check-in of a visitor who forgot his card, through the local web API.

The county card list is written here as the kiosk keeps it once pulled and verified (the
signed pull itself is tested against the platform in tests/sync/test_roaming.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kiosk.api.factory import create_app
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.config import KioskConfig, RoamingConfig
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from models.db import Store
from models.tables import Elder, MealRecord
from sync.county_cards import list_path
from tests.support.roster import elder_row
from tests.support.ui import PIN
from tests.support.ui import try_sign_in as sign_in

VISITOR = ("V0001", "pt-home", "东村助餐点", "王外点")  # elder id, home point, its name, name
VISITOR_CARD = "C0FFEE01"
OTHER = ("V0002", "pt-home", "东村助餐点", "赵远方")


def keep_county_list(store: Store) -> None:
    cards = {VISITOR_CARD: list(VISITOR), "BEEF0002": list(OTHER)}
    list_path(store).write_text(json.dumps({"version": 3, "cards": cards}), encoding="utf-8")


@pytest.fixture(params=[True], ids=["roaming"])
def roaming(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def config(config: KioskConfig, roaming: bool) -> KioskConfig:
    return config.model_copy(update={"roaming": RoamingConfig(accept_visitors=roaming)})


@pytest.fixture
def client(services: KioskServices) -> Iterator[TestClient]:
    keep_county_list(services.store)
    CaregiverBook(services.store, services.config.ui, services.now).add(
        "孙桂香", PIN, phone="13900003333"
    )
    with TestClient(create_app(services)) as client:
        yield client


def tap(services: KioskServices, uid: str | None) -> None:
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=uid))


def manual(client: TestClient, elder_id: str, reason: str = "forgot_card") -> dict[str, str]:
    token = client.cookies.get("kiosk_csrf")
    resp = client.post(
        "/api/manual-checkin",
        json={"elder_id": elder_id, "reason": reason},
        headers={"x-csrf-token": token or ""},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_headcount_splits_this_point_and_visitors(
    client: TestClient, services: KioskServices
) -> None:
    body = client.get("/api/headcount").json()
    assert (body["served"], body["local"], body["visitors"], body["roaming"]) == (0, 0, 0, True)
    assert 'id="served-split"' in client.get("/").text  # shown at 0 where visitors are accepted
    tap(services, elder_row(1).card_uid)
    tap(services, VISITOR_CARD)
    tap(services, VISITOR_CARD)  # his second tap: already served, not counted again
    tap(services, elder_row(2).card_uid)
    body = client.get("/api/headcount").json()
    assert (body["served"], body["local"], body["visitors"]) == (3, 2, 1)
    assert [(r["name"], r["visitor"]) for r in body["recent"]] == [
        ("李建国", False), ("王外点", True), ("王秀英", False),
    ]  # fmt: skip
    page = client.get("/").text
    assert '本点 <b id="served-local">2</b> 人 · 外点 <b id="served-visitors">1</b> 人' in page
    assert '<span class="visitor">外点</span>' in page


@pytest.mark.parametrize("roaming", [False], ids=["no-roaming"])
def test_no_split_where_visitors_are_not_accepted(client: TestClient, roaming: bool) -> None:
    body = client.get("/api/headcount").json()
    assert (body["visitors"], body["roaming"]) == (0, False)
    assert 'id="served-split" class="served-split" hidden' in client.get("/").text


def test_manual_visitor_found_by_pinyin_and_card_recorded_manual_and_visitor(
    client: TestClient, services: KioskServices
) -> None:
    assert sign_in(client) == "ok"
    page = client.get("/manual", params={"q": "WWD"}).text  # 王外点 by pinyin initials
    assert "外点老人（全城通）" in page
    assert "王外点" in page and "来自东村助餐点" in page and "卡尾号 EE01" in page
    assert "赵远方" not in page and "没有找到" not in page
    by_card = client.get("/manual", params={"q": "beef"}).text  # the card number's start
    assert "赵远方" in by_card and "王外点" not in by_card

    done = manual(client, VISITOR[0])
    assert done["outcome"] == "accepted", done
    assert "外点老人 · 来自东村助餐点" in done["message"]
    again = manual(client, VISITOR[0])
    assert again["outcome"] == "duplicate"
    # His card (found at home in the afternoon) tapped in the same slot: still one meal.
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=VISITOR_CARD))
    with services.store.read() as s:
        rows = s.scalars(select(MealRecord).where(MealRecord.elder_id == VISITOR[0])).all()
        assert [(r.method, r.flags, r.reason, r.caregiver_id) for r in rows] == [
            ("manual", "visitor", "forgot_card", "C001")
        ]
        assert s.get(Elder, VISITOR[0]).status == "visitor"  # type: ignore[union-attr]
    # Now also a local row (status visitor): still listed once, as a visitor.
    listed = client.get("/manual", params={"q": "WWD"}).text
    assert listed.count('value="V0001"') == 1 and "来自东村助餐点" in listed
    body = client.get("/api/headcount").json()
    assert (body["local"], body["visitors"]) == (0, 1)
    assert body["recent"][0]["method_label"] == "人工"

    # Once he is off the county list (a newer list without him), he is no longer served.
    list_path(services.store).write_text(
        json.dumps({"version": 4, "cards": {"BEEF0002": list(OTHER)}}), encoding="utf-8"
    )
    assert "王外点" not in client.get("/manual", params={"q": "WWD"}).text
    gone = manual(client, VISITOR[0], reason="other")
    assert gone["outcome"] == "refused", gone


@pytest.mark.parametrize("roaming", [False], ids=["no-roaming"])
def test_manual_visitor_only_where_visitors_are_accepted(client: TestClient, roaming: bool) -> None:
    assert sign_in(client) == "ok"
    page = client.get("/manual", params={"q": "WWD"}).text
    assert "外点老人" not in page and "王外点" not in page
    refused = manual(client, VISITOR[0])
    assert refused["outcome"] == "refused", refused
