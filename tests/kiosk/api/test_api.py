"""The local web API through the app factory, with the services of the fixtures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from kiosk.api.factory import create_app
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.runtime.daemon import card_tap_handler
from kiosk.runtime.services import KioskServices
from models.db import Store
from tests.support.roster import Clock, elder_row
from tests.support.wait import wait_until


@pytest.fixture
def client(services: KioskServices) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def tap(services: KioskServices, n: int) -> None:
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=elder_row(n).card_uid))


def test_headcount_counts_the_current_slot(client: TestClient, services: KioskServices) -> None:
    assert client.get("/api/headcount").json()["served"] == 0
    tap(services, 1)
    tap(services, 2)
    tap(services, 2)  # duplicate: no second count
    tap(services, 3)  # refused
    body = client.get("/api/headcount").json()
    assert body["served"] == 2
    assert (body["slot"], body["label"], body["hours"], body["open"]) == (
        "lunch", "今日午餐", "11:00–13:30", True,
    )  # fmt: skip
    assert [r["name"] for r in body["recent"]] == ["李建国", "王秀英"]
    assert body["recent"][0]["method_label"] == "刷卡"


def test_headcount_before_the_slot_shows_it_closed(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    clock.set("09:00")
    body = client.get("/api/headcount").json()
    assert (body["slot"], body["open"], body["served"]) == ("lunch", False, 0)


def test_health_reports_db_readers_and_queue(client: TestClient, services: KioskServices) -> None:
    tap(services, 1)
    resp = client.get("/api/health")
    body = resp.json()
    assert resp.status_code == 200
    assert body["db"]["ok"] is True
    assert body["queue_depth"] == 1
    assert body["readers"]["desk"]["state"] == "stopped"  # not started in this test
    assert body["status"] == "degraded"
    assert body["problems"] == ["读卡器未就绪（desk）"]


class UnreadableStore(Store):
    """A store whose disk has gone away: every read fails as SQLite would."""

    @contextmanager
    def read(self) -> Iterator[Session]:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))
        yield  # pragma: no cover


def test_health_is_503_when_the_database_fails(services: KioskServices) -> None:
    services.store = UnreadableStore(services.store.db_path)
    with TestClient(create_app(services)) as client:
        resp = client.get("/api/health")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "error"
    assert body["db"] == {
        "ok": False,
        "detail": "disk I/O error",
        "free_bytes": body["db"]["free_bytes"],
        "storage": "ok",  # the filesystem is fine: it is the database that fails
        "storage_detail": "",
        "writable": False,
    }
    assert "数据库不可用" in body["problems"]


def test_simulated_tap_goes_through_the_reader_thread(
    client: TestClient, services: KioskServices
) -> None:
    services.readers.start(card_tap_handler(services), services.stopping)
    try:
        resp = client.post("/api/simulate/tap", json={"uid": elder_row(1).card_uid.lower()})
        assert resp.status_code == 202
        wait_until(lambda: client.get("/api/headcount").json()["served"], "the tap to be served")
        assert client.get("/api/headcount").json()["served"] == 1
        assert client.get("/api/health").json()["readers"]["desk"]["state"] == "ok"
    finally:
        services.stopping.set()
        services.readers.join()


def test_garbage_card_number_is_refused_and_shown(
    client: TestClient, services: KioskServices
) -> None:
    services.readers.start(card_tap_handler(services), services.stopping)
    try:
        client.post("/api/simulate/tap", json={"uid": "not-a-card!"})
        event = wait_until(lambda: services.bus.recent("checkin", 1), "the refusal event")[0].data
        assert (event["outcome"], event["refusal"]) == ("refused", "invalid_card")
        assert event["message"] == "无法识别卡片，请重新刷卡"
    finally:
        services.stopping.set()
        services.readers.join()


@pytest.mark.parametrize(
    "body",
    [{}, {"uid": ""}, {"uid": 5}, {"uid": "AB", "extra": 1}, {"uid": "A" * 65}],
)
def test_bad_simulate_requests_get_422_with_reason(client: TestClient, body: object) -> None:
    resp = client.post("/api/simulate/tap", json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][0] == "body"


def test_simulate_unknown_reader_is_404(client: TestClient) -> None:
    resp = client.post("/api/simulate/tap", json={"uid": "AB", "reader": "door"})
    assert resp.status_code == 404
    assert "no simulated reader" in resp.json()["detail"]


def test_page_shows_site_slot_count_and_last_checkin(
    client: TestClient, services: KioskServices
) -> None:
    tap(services, 1)
    html = client.get("/").text
    assert "测试助老小院" in html
    assert "今日午餐" in html
    assert '<b id="served">1</b>' in html
    assert "王秀英，签到成功，请用餐" in html
    assert "outcome-accepted" in html


def test_metrics_in_prometheus_format(client: TestClient, services: KioskServices) -> None:
    tap(services, 1)
    tap(services, 1)  # duplicate
    tap(services, 3)  # refused: suspended
    text = client.get("/metrics").text
    assert 'kiosk_checkins_total{method="card",outcome="accepted"} 1' in text
    assert 'kiosk_checkins_total{method="card",outcome="duplicate"} 1' in text
    assert 'kiosk_checkins_total{method="card",outcome="refused"} 1' in text
    assert "kiosk_unsent_records 1" in text
    assert "kiosk_db_up 1" in text
    assert 'kiosk_reader_up{reader="desk"} 0' in text
    assert 'device_id="test-terminal"' in text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(samples["kiosk_oldest_unsent_age_seconds"]) >= 0
    assert all(float(v) >= 0 for v in samples.values())  # every sample is "name{labels} value"


def test_unsynchronised_clock_is_shown(client: TestClient, services: KioskServices) -> None:
    services.clock_synced = False
    body = client.get("/api/health").json()
    assert body["clock_synchronised"] is False
    assert "时钟未同步，请检查网络" in body["problems"]
