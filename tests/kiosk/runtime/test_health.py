"""KioskServices.health() is typed (kiosk.runtime.health); GET /api/health keeps its JSON shape:
parts not in use say only their state, running parts give every field."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hardware.speaker import SpeakerStatus
from kiosk.api.factory import create_app
from kiosk.face.worker import FaceStatus
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
from kiosk.touchscreen.statusbar import status_bar
from sync.scheduler import SyncState

TOP_KEYS = [
    "status", "problems", "version", "device_id", "point_id", "time", "db", "readers", "camera",
    "face", "queue_depth", "rejected", "sync", "clock_synchronised", "speaker",
]  # fmt: skip
DB_KEYS = ["ok", "detail", "free_bytes", "storage", "storage_detail", "writable"]


@pytest.fixture
def client(services: KioskServices) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def test_health_json_shape_with_the_optional_parts_off(
    client: TestClient, services: KioskServices
) -> None:
    body = client.get("/api/health").json()
    assert list(body) == TOP_KEYS
    assert list(body["db"]) == DB_KEYS and body["db"]["writable"] is True
    assert list(body["readers"]) == ["desk"] and list(body["readers"]["desk"]) == [
        "state",
        "detail",
    ]
    assert body["camera"] == {"state": "disabled"}
    assert body["face"] == {"state": "disabled"}
    assert body["sync"] == {"state": "off", "detail": "not started"}
    assert body["speaker"] in ({"state": "disabled"}, {"state": "unknown", "detail": "not started"})
    assert dt.datetime.fromisoformat(body["time"]) == services.now()
    assert body["queue_depth"] == 0 and body["rejected"] == 0
    # the typed object and the JSON say the same
    health = services.health()
    assert health.status == body["status"] and list(health.problems) == body["problems"]


def test_running_parts_give_every_field(services: KioskServices) -> None:
    last = dt.datetime(2026, 3, 2, 11, 58, tzinfo=dt.UTC)
    services.sync_state = SyncState(last_success_at=last, roster_version=7)
    health = services.health()
    assert health.sync == SyncHealth("ok", last_success_at=last, roster_version=7)
    assert health.as_json()["sync"] == {
        "state": "ok",
        "last_success_at": last.isoformat(),
        "last_error": None,
        "roster_version": 7,
        "checkpoint_conflict": None,
    }
    services.sync_state = SyncState(last_error="timeout")
    health = services.health()
    assert health.sync.state == "error" and "数据上传失败，记录已保存在本机" in health.problems

    services.sync_state, services.sync_off_reason = None, "not provisioned"
    assert services.health().as_json()["sync"] == {"state": "off", "detail": "not provisioned"}

    face = FaceStatus(
        state="idle", detail="no face enrolled", templates=0, elders=0, liveness="off",
        card_evidence="evidence", heartbeat_age_s=0.1, frames_seen=3, frames_analyzed=0,
        checkins=0, decision_ms_p50=None, decision_ms_p99=None, detect_ms_p50=None,
        encode_ms_p50=None,
    )  # fmt: skip
    assert FaceHealth("idle", face).as_json() == dataclasses.asdict(face)
    speaker = SpeakerStatus(state="no_player", player=None, spoken=0, dropped=2, detail="")
    assert SpeakerHealth("no_player", "", speaker).as_json() == {
        "state": "no_player", "player": None, "spoken": 0, "dropped": 2, "detail": "",
    }  # fmt: skip
    camera = CameraHealth("ok", "", 14.9, "640x480", 120, 1)
    assert camera.as_json() == {
        "state": "ok", "detail": "", "fps": 14.9, "resolution": "640x480", "frames": 120,
        "reconnects": 1,
    }  # fmt: skip


def test_status_bar_reads_the_typed_parts() -> None:
    health = Health(
        status="degraded",
        problems=("存储空间不足",),
        version="t",
        device_id="d",
        point_id="p",
        time=dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC),
        db=StorageHealth(True, "", 10_000_000, "ok", "", low_space=True),
        readers={"desk": ReaderHealth("ok")},
        camera=CameraHealth("disabled"),
        face=FaceHealth("disabled"),
        queue_depth=3,
        rejected=0,
        sync=SyncHealth("ok", last_success_at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)),
        clock_synchronised=None,
        speaker=SpeakerHealth("disabled"),
    )
    bar = status_bar(health, health.time)
    texts = {i["key"]: (i["state"], i["text"]) for i in bar["items"]}
    assert texts["storage"] == ("bad", "存储将满")  # low space shows before it is full
    assert texts["camera"] == ("off", "未用刷脸")
    assert texts["platform"] == ("ok", "平台 3 小时未联系")
    assert texts["unsent"] == ("ok", "3 条待上传")
    assert texts["clock"] == ("off", "时钟未检查")
    # a storage failure makes the whole terminal "error" (503) and the bar red
    broken = dataclasses.replace(health, db=StorageHealth(True, "", 0, "full", "0 bytes free"))
    assert status_bar(broken)["items"][0]["text"] == "存储故障"
    assert broken.db.writable is False
