"""Card-tap evidence modes, the face worker in the daemon's self-check, camera/face health.

Card evidence runs real dlib on real photos as camera frames (../shared/faces; skipped where
absent). The worker/health tests use a fake camera and need no photos.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from hardware.camera import CameraState, CameraStatus
from hardware.cards import CardTap
from hardware.simulated import SimulatedReader
from kiosk.checkin.rules import Outcome, Refusal
from kiosk.config import ReaderConfig, parse_config
from kiosk.face.detect import detect_faces
from kiosk.face.encode import encode_face
from kiosk.face.enrol import fit_photo, load_image
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.runtime.daemon import build_face, build_services, card_tap_handler
from kiosk.runtime.services import KioskServices
from models.db import Store
from models.roster import apply_rows
from models.tables import AuditEvent, MealRecord
from tests.support.config import BASE_CONFIG
from tests.support.roster import Clock, elder_row
from tests.support.wait import wait_until

DESK = ReaderConfig(kind="simulated", name="desk")
# Module fixtures run dlib on the photos once: keep the module on one xdist worker.
pytestmark = pytest.mark.xdist_group("face_evidence")
OBAMA_CARD, BIDEN_CARD, UNENROLLED_CARD = (elder_row(n).card_uid for n in (1, 2, 6))


class FakeCamera:
    """What CardEvidence and FaceWorker use of hardware.camera.Camera."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None
        self.state = CameraState.OK
        self.seq = 0

    def show(self, frame: np.ndarray | None) -> None:
        self.frame = frame
        self.seq += 1

    def status(self) -> CameraStatus:
        return CameraStatus(self.state, "fake", fps=10.0, width=640, height=480)

    def latest(self) -> tuple[np.ndarray, int, float] | None:
        return None if self.frame is None else (self.frame, self.seq, time.monotonic())

    def wait_newer(self, seq: int, timeout: float) -> tuple[np.ndarray, int, float] | None:
        time.sleep(min(timeout, 0.05))
        return self.latest() if self.seq > seq else None

    def run(self, stop: threading.Event) -> None:
        stop.wait()


@pytest.fixture(scope="module")
def photos(face_data: Path) -> dict[str, Any]:
    """Frames (640 px wide, BGR) and enrolment encodings, computed once."""
    root = face_data

    def frame(rel: str) -> np.ndarray:
        rgb = load_image(root / rel)
        assert rgb is not None
        scale = 640 / rgb.shape[1]
        return cv2.cvtColor(cv2.resize(rgb, None, fx=scale, fy=scale), cv2.COLOR_RGB2BGR)

    def encoding(rel: str) -> np.ndarray:
        rgb = fit_photo(load_image(root / rel))
        return encode_face(rgb, detect_faces(rgb, 1.0, 1)[0])

    return {
        "obama_frame": frame("test/obama1.jpg"),
        "biden_frame": frame("train/biden/biden2.jpg"),
        "obama": encoding("train/obama/obama.jpg"),
        "biden": encoding("train/biden/biden.jpg"),
    }


def face_services(
    tmp_path: Path,
    clock: Clock,
    mode: str,
    photos: dict[str, Any] | None = None,
    liveness: str = "off",
) -> tuple[KioskServices, FakeCamera]:
    config = parse_config(BASE_CONFIG + f"face: {{card_evidence: {mode}, liveness: {liveness}}}\n")
    store = Store(tmp_path / "data" / "kiosk.db")
    store.upgrade_schema()
    services = build_services(
        config,
        tmp_path / "data",
        readers=[(DESK, SimulatedReader("desk"))],
        store=store,
        clock=clock,
    )
    apply_rows(store, [elder_row(n) for n in (1, 2, 6)], clock(), source="test")
    camera = FakeCamera()
    build_face(services, camera=camera)  # type: ignore[arg-type]
    if photos is not None:
        templates = TemplateStore(store, FaceKey.load(tmp_path / "data"))
        for elder, name in (("E0001", "obama"), ("E0002", "biden")):
            templates.add(
                elder, photos[name], quality=200, face_px=200, consent_ref="c", at=clock()
            )
    return services, camera


def tap(services: KioskServices, uid: str) -> None:
    card_tap_handler(services)(DESK, CardTap(uid=uid, reader="desk"))


def last_record(services: KioskServices) -> MealRecord | None:
    with services.store.read() as s:
        return s.scalar(select(MealRecord).order_by(MealRecord.seq.desc()))


def last_event(services: KioskServices) -> dict[str, Any]:
    return services.bus.recent("checkin", 1)[0].data


@pytest.fixture
def clock() -> Clock:
    from tests.support.roster import TZ

    return Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))


# ------------------------------------------------------------------ evidence


def test_evidence_mode_records_card_face_or_flags(
    tmp_path: Path, clock: Clock, photos: dict[str, Any]
) -> None:
    services, camera = face_services(tmp_path, clock, "evidence", photos)

    camera.show(photos["obama_frame"])
    tap(services, OBAMA_CARD)  # Obama's card, Obama's face
    record = last_record(services)
    assert record is not None and record.elder_id == "E0001"
    assert (record.method, record.flags) == ("card+face", "")
    assert record.distance is not None and record.distance <= 0.45

    camera.show(photos["obama_frame"])
    tap(services, BIDEN_CARD)  # Biden's card, Obama's face: a proxy tap, recorded and flagged
    record = last_record(services)
    assert (record.elder_id, record.method, record.flags) == ("E0002", "card", "face_mismatch")

    clock.set("07:30")  # breakfast: a new slot
    camera.show(np.zeros((480, 640, 3), np.uint8))
    tap(services, OBAMA_CARD)
    record = last_record(services)
    assert (record.slot, record.method, record.flags) == ("breakfast", "card", "no_face")


def test_a_face_the_worker_just_analysed_is_evidence_without_a_second_encoding(
    tmp_path: Path, clock: Clock, photos: dict[str, Any]
) -> None:
    services, camera = face_services(tmp_path, clock, "evidence", photos)
    assert services.face is not None
    camera.show(np.zeros((480, 640, 3), np.uint8))  # the frame itself shows nobody...
    services.face.last_encoding = (time.monotonic(), photos["obama"])  # ...but he was just seen
    tap(services, OBAMA_CARD)
    record = last_record(services)
    assert (record.method, record.flags) == ("card+face", "")

    clock.set("07:30")  # a new slot; the worker's sighting is now too old to count
    services.face.last_encoding = (time.monotonic() - 5, photos["obama"])
    tap(services, OBAMA_CARD)
    record = last_record(services)
    assert (record.slot, record.method, record.flags) == ("breakfast", "card", "no_face")


def test_require_mode_refuses_a_card_without_its_holders_face(
    tmp_path: Path, clock: Clock, photos: dict[str, Any]
) -> None:
    services, camera = face_services(tmp_path, clock, "require", photos)

    camera.show(photos["obama_frame"])
    tap(services, BIDEN_CARD)
    event = last_event(services)
    assert event["outcome"] == Outcome.REFUSED and event["refusal"] == Refusal.FACE_REQUIRED
    assert "请正对摄像头" in event["message"]
    assert last_record(services) is None
    with services.store.read() as s:
        audit = s.scalar(select(AuditEvent).where(AuditEvent.kind == "face_required"))
    assert audit is not None and "face_mismatch" in audit.detail

    camera.show(photos["biden_frame"])
    tap(services, BIDEN_CARD)  # now he is in front of the camera
    assert last_record(services).method == "card+face"

    # An elder without a face template is never refused for it (enrolment is voluntary)...
    tap(services, UNENROLLED_CARD)
    record = last_record(services)
    assert (record.elder_id, record.method, record.flags) == ("E0006", "card", "no_template")

    # ...and a camera that delivers nothing never blocks a tap.
    clock.set("07:30")
    camera.state = CameraState.ABSENT
    tap(services, OBAMA_CARD)
    record = last_record(services)
    assert (record.elder_id, record.flags) == ("E0001", "camera_unavailable")


def test_off_mode_takes_no_evidence(tmp_path: Path, clock: Clock) -> None:
    services, _camera = face_services(tmp_path, clock, "off")
    assert services.card_evidence is None
    tap(services, OBAMA_CARD)
    assert (last_record(services).method, last_record(services).flags) == ("card", "")


# ------------------------------------------------------------------ worker, health, self-check


def test_health_shows_camera_and_face_and_a_missing_camera_is_only_degraded(
    tmp_path: Path, clock: Clock
) -> None:
    services, camera = face_services(tmp_path, clock, "evidence")
    camera.state = CameraState.ABSENT
    health = services.health()
    assert health.camera.state == "absent"
    assert health.camera.resolution == "640x480"
    assert health.face.state == "starting"
    assert health.status == "degraded" and "摄像头未连接" in health.problems
    tap(services, OBAMA_CARD)  # card check-in goes on
    assert last_record(services).method == "card"


def test_worker_with_nobody_enrolled_runs_nothing_heavy_and_records_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    services, camera = face_services(tmp_path, clock, "evidence")
    worker = services.face
    assert worker is not None
    stop = threading.Event()
    worker.start(stop)
    for n in range(1, 6):
        camera.show(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8))
        wait_until(lambda n=n: worker.status().frames_seen >= n, f"the worker to take frame {n}")
    stop.set()
    worker.join()
    status = worker.status()
    assert status.state == "stopped" and status.templates == 0
    assert status.frames_seen > 0 and status.frames_analyzed == 0
    assert last_record(services) is None


def test_self_check_fails_for_a_dead_or_hung_worker_not_for_a_missing_camera(
    tmp_path: Path, clock: Clock
) -> None:
    services, camera = face_services(tmp_path, clock, "evidence")
    worker = services.face
    assert worker is not None
    assert worker.problem(15) is None  # not started: nothing to check
    stop = threading.Event()
    camera.state = CameraState.ABSENT
    before = worker.heartbeat
    worker.start(stop)
    wait_until(lambda: worker.heartbeat > before, "the worker's first heartbeat")
    assert worker.problem(15) is None  # camera missing, worker alive: healthy
    worker.heartbeat -= 60
    assert "hung" in (worker.problem(15) or "")
    stop.set()
    worker.join()
    assert worker.problem(15) == "face worker thread stopped"


def test_a_still_photo_repeated_as_video_fails_blink_liveness_in_the_worker(
    tmp_path: Path, clock: Clock, photos: dict[str, Any]
) -> None:
    """The enrolled elder's photo held to the camera: matched, but it never blinks, so after
    the liveness timeout the worker says 未通过活体检测 and nothing is recorded."""
    services, camera = face_services(tmp_path, clock, "off", photos, liveness="blink")
    worker = services.face
    assert worker is not None and worker.pipeline.landmarks
    stop = threading.Event()
    worker.start(stop)
    deadline = time.monotonic() + 60  # a bound: liveness times out after a few seconds
    try:
        while time.monotonic() < deadline:
            camera.show(photos["obama_frame"])  # the same frame, again and again
            events = services.bus.recent("checkin", 5)
            if events:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join()
    assert [e.data["refusal"] for e in events] == [Refusal.LIVENESS_FAILED]
    assert events[0].data["elder_id"] is None  # no name shown for a face that was not proven
    assert last_record(services) is None
