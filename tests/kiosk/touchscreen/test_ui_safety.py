"""Safety ledgers (留样, weekly inspection, monthly 台账), the status bar, the heartbeat part."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kiosk.runtime.health import (
    CameraHealth,
    FaceHealth,
    Health,
    ReaderHealth,
    SpeakerHealth,
    StorageHealth,
    SyncHealth,
)
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.ledgers import heartbeat_summary
from kiosk.touchscreen.notices import set_menu
from kiosk.touchscreen.statusbar import status_bar
from models.tables import AuditEvent, FoodSample, SafetyInspection
from sync.heartbeat import HeartbeatExtras, build_heartbeat
from sync.wire import Heartbeat
from tests.support.roster import Clock
from tests.support.ui import sign_in_client

ALL_OK = {f"check_{k}": "ok" for k in ("building", "electricity", "gas", "extinguishers", "exits")}


@pytest.fixture
def client(caregiver_client: TestClient) -> TestClient:
    return caregiver_client


def signed_in(client: TestClient) -> str:
    return sign_in_client(client, "/safety")


def test_ledger_pages_need_the_pin_and_csrf(client: TestClient) -> None:
    assert client.get("/safety", follow_redirects=False).status_code == 401
    page = client.get("/safety", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and "/caregiver/login" in page.headers["location"]
    token = signed_in(client)
    form = {"slot": "lunch", "dishes": "米饭", "time": "11:20"}
    assert client.post("/safety/sample", data=form).status_code == 403  # no CSRF token
    assert client.post("/safety/sample", data={**form, "csrf": token}).status_code == 200


def test_food_sample_prefilled_from_the_menu_and_saved(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    set_menu(services.store, clock().date(), "lunch", "红烧肉、炒白菜、米饭", clock())
    token = signed_in(client)
    page = client.get("/safety/sample").text
    assert 'value="红烧肉、炒白菜、米饭"' in page  # the lunch menu, lunch is open at 11:30
    assert 'value="lunch" data-dishes="红烧肉、炒白菜、米饭" required checked' in page
    assert 'value="11:30"' in page
    resp = client.post(
        "/safety/sample",
        data={"csrf": token, "slot": "lunch", "dishes": "红烧肉、炒白菜、米饭", "time": "11:25"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/safety?saved=sample"
    overview = client.get("/safety?saved=sample").text
    assert "留样已登记" in overview and "12月04日 11:25" in overview  # kept 48 h
    with services.store.read() as s:
        row = s.scalar(select(FoodSample))
        assert row.caregiver_id == "C001" and row.sample_kept and row.at.hour == 11
        assert s.scalar(select(AuditEvent).where(AuditEvent.kind == "food_sample")) is not None
    # a second entry for the same slot corrects the first
    client.post(
        "/safety/sample",
        data={"csrf": token, "slot": "lunch", "dishes": "红烧肉、青菜", "time": "11:26"},
    )
    with services.store.read() as s:
        assert [r.dishes for r in s.scalars(select(FoodSample))] == ["红烧肉、青菜"]


def test_food_sample_refusals_are_plain_chinese(client: TestClient) -> None:
    token = signed_in(client)
    base = {"csrf": token, "slot": "lunch", "time": "11:20"}
    resp = client.post("/safety/sample", data={**base, "dishes": " "})
    assert resp.status_code == 422 and "请填写菜名" in resp.text
    resp = client.post("/safety/sample", data={**base, "dishes": "米饭", "kept": "no"})
    assert resp.status_code == 422 and "请填写备注" in resp.text
    resp = client.post("/safety/sample", data={**base, "dishes": "米饭", "slot": "dinner"})
    assert resp.status_code == 422 and "请选择餐次" in resp.text
    resp = client.post("/safety/sample", data={**base, "dishes": "米饭", "time": "13:00"})
    assert resp.status_code == 422 and "不能晚于现在" in resp.text


def test_weekly_inspection_with_a_problem_needs_its_description(
    client: TestClient, services: KioskServices
) -> None:
    token = signed_in(client)
    checks = {**ALL_OK, "check_extinguishers": "problem"}
    resp = client.post("/safety/inspection", data={"csrf": token, **checks})
    assert resp.status_code == 422 and "请填写发现的问题" in resp.text
    resp = client.post("/safety/inspection", data={"csrf": token, "check_gas": "ok"})
    assert (
        resp.status_code == 422
        and "房屋建筑" in resp.text
        and "燃气" not in resp.text.split("请逐项选择")[1].split("<")[0]
    )
    resp = client.post(
        "/safety/inspection",
        data={"csrf": token, **checks, "problems": "灭火器过期一个", "fixed": ""},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    with services.store.read() as s:
        row = s.scalar(select(SafetyInspection))
    assert row.week_start == dt.date(2026, 11, 30)  # the Monday
    assert json.loads(row.checks)["extinguishers"] == "problem"
    summary = heartbeat_summary(services.store, services.now())
    assert summary["inspection_this_week"] and summary["open_problems"] == 1
    # the edit form shows what was entered
    assert 'value="problem" required checked' in client.get("/safety/inspection").text


def test_monthly_ledger_prints_entries_and_gaps(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    token = signed_in(client)
    from kiosk.checkin.rules import CheckinRequest, Method

    assert services.checkin.check_in(CheckinRequest(Method.CARD, card_uid="A0000001")).accepted
    page = client.get("/safety/ledger?month=2026-12").text
    assert "本月没有留样记录" in page and "12-02" in page.split('id="sample-gaps"')[1]
    client.post(
        "/safety/sample", data={"csrf": token, "slot": "lunch", "dishes": "饺子", "time": "11:10"}
    )
    client.post("/safety/inspection", data={"csrf": token, **ALL_OK})
    client.cookies.clear()  # the ledger is readable without a session (for the inspector)
    page = client.get("/safety/ledger?month=2026-12").text
    assert "饺子" in page and "12-04 11:10" in page and "王秀兰" in page
    assert 'id="sample-gaps"' not in page
    assert page.count("✓") == 5
    assert client.get("/safety/ledger?month=2026-13").status_code == 422


def test_reminder_on_the_check_in_view_until_the_sample_is_entered(
    client: TestClient, clock: Clock
) -> None:
    clock.set("06:30")  # before the first meal: no reminder yet
    assert client.get("/api/statusbar").json()["reminders"] == []
    clock.set("11:30")
    reminders = client.get("/api/statusbar").json()["reminders"]
    assert reminders == ["今天还没有登记留样，请在“安全台账”里登记"]
    token = signed_in(client)
    client.post(
        "/safety/sample", data={"csrf": token, "slot": "lunch", "dishes": "面条", "time": "11:00"}
    )
    assert client.get("/api/statusbar").json()["reminders"] == []
    clock.set("11:30", day=3)  # Thursday: this week's inspection is due too
    assert len(client.get("/api/statusbar").json()["reminders"]) == 2


def test_heartbeat_carries_the_ledgers(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    token = signed_in(client)
    client.post(
        "/safety/sample", data={"csrf": token, "slot": "lunch", "dishes": "米饭", "time": "11:00"}
    )
    hb = build_heartbeat(
        services.store,
        "test-terminal",
        clock(),
        software_version="t",
        extras=lambda: HeartbeatExtras(safety=heartbeat_summary(services.store, clock())),
    )
    assert hb.safety is not None and hb.safety.food_sample_today
    (entry,) = hb.safety.food_samples
    assert entry.dishes == "米饭" and entry.stored_until - entry.sampled_at == dt.timedelta(
        hours=48
    )
    assert Heartbeat.model_validate_json(hb.model_dump_json()) == hb
    # an older kiosk sends none, and that is still a valid heartbeat
    old = build_heartbeat(services.store, "test-terminal", clock(), software_version="t")
    assert old.safety is None and "safety" in old.model_dump()


HEALTH_OK = Health(
    status="ok",
    problems=(),
    version="t",
    device_id="test-terminal",
    point_id="P1",
    time=dt.datetime(2026, 3, 2, 12, 0),
    db=StorageHealth(ok=True, detail="", free_bytes=10**9, storage="ok", storage_detail=""),
    readers={"desk": ReaderHealth("ok")},
    camera=CameraHealth("ok"),
    face=FaceHealth("ok"),
    queue_depth=0,
    rejected=0,
    sync=SyncHealth("ok"),
    clock_synchronised=True,
    speaker=SpeakerHealth("ok"),
)


def test_status_bar_says_what_is_wrong_and_what_to_do() -> None:
    bar = status_bar(HEALTH_OK)
    assert bar["state"] == "ok" and bar["todo"] == []
    assert [i["key"] for i in bar["items"]] == [
        "reader",
        "camera",
        "platform",
        "unsent",
        "clock",
        "speaker",
    ]
    bad = dataclasses.replace(
        HEALTH_OK,
        readers={"desk": ReaderHealth("absent")},
        sync=SyncHealth("error", last_error="timeout"),
        queue_depth=12,
        clock_synchronised=False,
        speaker=SpeakerHealth("no_player"),
    )
    bar = status_bar(bad)
    texts = {i["key"]: (i["state"], i["text"]) for i in bar["items"]}
    assert texts["reader"] == ("bad", "读卡器未连接")
    assert texts["platform"] == ("warn", "平台连不上")
    assert texts["unsent"] == ("warn", "12 条待上传")
    assert texts["clock"] == ("bad", "时钟未同步")
    assert texts["speaker"] == ("warn", "喇叭不可用")
    assert bar["state"] == "bad"
    assert bar["todo"][0].startswith("读卡器未连接，请检查读卡器连线")
    assert any("记录都保存在本机" in t for t in bar["todo"])


def test_health_reports_the_speaker(client: TestClient, services: KioskServices) -> None:
    health = client.get("/api/health").json()
    assert health["speaker"]["state"] in ("unknown", "disabled")
    bar = client.get("/api/statusbar").json()
    reader = next(i for i in bar["items"] if i["key"] == "reader")
    assert reader["state"] in ("ok", "warn", "bad")
