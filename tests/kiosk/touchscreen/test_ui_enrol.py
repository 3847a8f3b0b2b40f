"""Face enrolment on the touchscreen (real dlib on a real photo) and card binding by a tap."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hardware.cards import CardTap
from kiosk.config import ReaderConfig
from kiosk.runtime.daemon import card_tap_handler
from kiosk.runtime.services import KioskServices
from models.tables import AuditEvent, Card, FaceTemplate, MealRecord
from tests.support.roster import Clock
from tests.support.ui import sign_in_client

DESK = ReaderConfig(kind="simulated", name="desk")


class StillCamera:
    """Stands in for hardware.camera.Camera: `latest()` is always the same picture."""

    def __init__(self, bgr: np.ndarray) -> None:
        self.frame = bgr

    def latest(self) -> tuple[np.ndarray, int, float]:
        return self.frame, 1, 0.0


@pytest.fixture
def client(caregiver_client: TestClient) -> TestClient:
    return caregiver_client


def signed_in(client: TestClient) -> str:
    return sign_in_client(client, "/enrol")


def tap(services: KioskServices, uid: str) -> None:
    card_tap_handler(services)(DESK, CardTap(uid=uid, reader="desk"))


# ----------------------------------------------------------------------------- card binding


def test_binding_needs_the_pin_and_csrf(client: TestClient) -> None:
    assert client.post("/api/card-binding", data={"elder_id": "E0005"}).status_code == 401
    token = signed_in(client)
    assert client.post("/api/card-binding", data={"elder_id": "E0005"}).status_code == 403
    resp = client.post("/api/card-binding", data={"csrf": token, "elder_id": "E9999"})
    assert resp.status_code == 422


def test_next_unbound_card_is_bound_and_does_not_check_in(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    token = signed_in(client)
    page = client.get("/enrol?elder_id=E0005&mode=card").text
    assert "陈保国" in page and "开始绑卡" in page
    state = client.post("/api/card-binding", data={"csrf": token, "elder_id": "E0005"}).json()
    assert state["armed"] and state["elder_name"] == "陈保国" and state["seconds_left"] == 60
    events: list[str] = []
    services.bus.add_listener(lambda e: events.append(e.kind))
    # a card already bound to 王秀英 is refused for binding, and no meal is recorded
    tap(services, "A0000001")
    state = client.get("/api/card-binding").json()
    assert state["armed"] and state["last"]["outcome"] == "already_bound"
    assert "已经绑定给王*英，不能再绑定" in state["last"]["message"]
    # the new card binds; the window closes
    tap(services, "B0000099")
    state = client.get("/api/card-binding").json()
    assert not state["armed"] and state["last"]["outcome"] == "bound"
    assert events == ["card_bind", "card_bind"]
    with services.store.read() as s:
        assert s.get(Card, "B0000099").elder_id == "E0005"
        assert s.scalar(select(MealRecord)) is None
        kinds = [a.kind for a in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "card_bind_refused" in kinds and "card_bound" in kinds
    # the window is closed: the next tap of that card checks in 陈保国 as usual
    tap(services, "B0000099")
    with services.store.read() as s:
        assert s.scalar(select(MealRecord.elder_id)) == "E0005"


def test_binding_window_expires_and_can_be_cancelled(
    client: TestClient, services: KioskServices, clock: Clock
) -> None:
    token = signed_in(client)
    client.post("/api/card-binding", data={"csrf": token, "elder_id": "E0005"})
    clock.now += dt.timedelta(seconds=61)
    assert not client.get("/api/card-binding").json()["armed"]
    tap(services, "B0000077")  # an unknown card after the window: an ordinary refusal
    with services.store.read() as s:
        assert s.get(Card, "B0000077") is None
    client.post("/api/card-binding", data={"csrf": token, "elder_id": "E0005"})
    assert not client.post("/api/card-binding/cancel", data={"csrf": token}).json()["armed"]


def test_concurrent_taps_bind_one_card_only(services: KioskServices) -> None:
    services.card_binding.arm(services.store, "E0005", "C001", services.now())
    threads = [threading.Thread(target=tap, args=(services, f"C00000{n:02d}")) for n in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with services.store.read() as s:
        cards = s.scalars(select(Card.uid).where(Card.elder_id == "E0005")).all()
    # the window closes after the first bind; later taps are ordinary (unknown-card) taps
    assert len(cards) == 1


# ----------------------------------------------------------------------------- face enrolment


@pytest.fixture
def photo(face_data: Path) -> np.ndarray:
    root = face_data
    bgr = cv2.imread(str(root / "train" / "obama" / "obama.jpg"))
    assert bgr is not None
    return bgr


def test_enrol_from_the_camera_with_consent(
    client: TestClient, services: KioskServices, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a still camera gives one frame however long the session watches (the live clip:
    # test_ui_enrol_live.py)
    monkeypatch.setattr("kiosk.api.routers.enrol.CAPTURE_SECONDS", 0.5)
    services.camera = StillCamera(photo)
    token = signed_in(client)
    page = client.get("/enrol?elder_id=E0001&mode=face").text
    assert "不愿意刷脸也可以一直刷卡" in page and "同意书-20261202-E0001" in page
    snap = client.get("/api/camera/snapshot.jpg")
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
    assert snap.headers["cache-control"].startswith("no-store")
    assert client.get("/api/enrol/quality").json() == {"state": "ok", "hint": "可以登记了"}
    form = {"csrf": token, "elder_id": "E0001", "consent_ref": "同意书-20261202-E0001"}
    resp = client.post("/api/enrol", data=form)  # the box is not ticked
    assert resp.status_code == 422 and resp.json()["reason"] == "no_consent"
    assert client.post("/api/enrol", data={**form, "consent": "yes", "csrf": ""}).status_code == 403
    body = client.post("/api/enrol", data={**form, "consent": "yes"}).json()
    assert body["outcome"] == "enrolled" and body["templates"] == 1, body
    assert body["kept"] == 1 and body["frames"] == 1  # the same frame is not kept twice
    # the same face for another elder: the typed refusal comes back
    body = client.post("/api/enrol", data={**form, "consent": "yes", "elder_id": "E0002"}).json()
    assert body == {
        "outcome": "refused",
        "reason": "duplicate",
        "message": "这张脸已登记在 E0001 名下，不能重复登记",
    }
    with services.store.read() as s:
        assert s.scalar(select(FaceTemplate.source)) == "screen"
        kinds = [a.kind for a in s.scalars(select(AuditEvent))]
    assert kinds.count("face_enrolled") == 1 and kinds.count("face_enrol_refused") == 1
    # no image was written anywhere in the data dir
    images = [p for p in services.data_dir.rglob("*") if p.suffix in (".jpg", ".jpeg", ".png")]
    assert images == []


def test_quality_hints_for_small_dark_and_blurred_faces(
    client: TestClient, services: KioskServices, photo: np.ndarray
) -> None:
    signed_in(client)
    small = np.full((480, 640, 3), 128, np.uint8)
    face = cv2.resize(photo, None, fx=0.12, fy=0.12)
    small[: face.shape[0], : face.shape[1]] = face
    services.camera = StillCamera(small)
    assert client.get("/api/enrol/quality").json()["state"] in ("face_too_small", "no_face")
    services.camera = StillCamera(np.zeros((480, 640, 3), np.uint8))  # lens covered
    assert client.get("/api/enrol/quality").json()["state"] == "no_face"
    services.camera = StillCamera(np.asarray(photo * 0.15, dtype=np.uint8))
    assert client.get("/api/enrol/quality").json() == {
        "state": "too_dark",
        "hint": "太暗了，请开灯或换个亮处",
    }
    # a soft picture (sharpness under the old floor of 80) is fine now; hopeless blur is not
    services.camera = StillCamera(cv2.GaussianBlur(photo, (0, 0), 3))
    assert client.get("/api/enrol/quality").json()["state"] == "ok"
    services.camera = StillCamera(cv2.GaussianBlur(photo, (0, 0), 12))
    assert client.get("/api/enrol/quality").json() in (
        {"state": "blurred", "hint": "画面模糊，请别动，或擦一擦镜头"},
        {"state": "no_face", "hint": "请老人正对摄像头"},
    )


def test_no_camera_says_so(client: TestClient) -> None:
    signed_in(client)
    assert "没有摄像头，不能登记人脸" in client.get("/enrol?elder_id=E0001").text
    assert client.get("/api/camera/snapshot.jpg").status_code == 404
    assert client.get("/api/enrol/quality").json()["state"] == "no_camera"
