"""Photo attacks and the live clip through the real camera path, with the default liveness.

The kiosk's Camera reads a video file as it reads a USB camera (OpenCV, paced at the file's
frame rate, newest frame only) and the face worker runs as in the daemon, writing through the
real check-in service. Attack videos are made once per session from the still photos in
../shared/faces (bench/face_tools/attack_video.py): the photo moved, rotated, scaled, tilted
in perspective, turned while tilted back, and shown as a screen with moiré and glare, 30 s at
30 fps each, for enrolled elders. None may check anybody in. The Hamilton clip must still
check Lin in; the time it takes is logged (docs/face.md).

`KIOSK_TEST_FACE_DETECTOR=yunet` runs the whole file with `face.detector: yunet` (enrolment
and check-in); the default is the shipped detector.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
from sqlalchemy import select

from bench.face_tools.attack_video import ATTACKS, FPS, write_attack_video
from bench.face_tools.dataset import CLIP
from hardware.camera import Camera, CameraState
from kiosk.config import parse_config
from kiosk.face.enrol import Enrolled, Enroller, load_image
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.runtime.daemon import build_face, build_services
from models.db import Store
from models.roster import apply_rows
from models.tables import MealRecord
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ, Clock, elder_row

# Each test plays 30 s of video in real time, after writing it on first use.
ATTEMPTS = 3  # the live clip: steps up to the camera at most three times
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
log = logging.getLogger(__name__)

ENROLLED = {  # elder -> enrolment photo; the attack photos are these very photos
    "E0001": "lin-manuel-miranda.png",
    "E0002": "train/obama/obama.jpg",
    "E0003": "train/biden/biden.jpg",
}
VIDEOS = [  # (elder, attack kind)
    ("E0001", "move"),
    ("E0001", "tilt"),
    ("E0001", "turn"),
    ("E0001", "screen"),
    ("E0002", "screen"),
    ("E0003", "tilt"),
]
STARVED_MS = 300
CLIP_FACE_FROM_S = 84 / 29.97  # Lin's face is first detectable at frame 84 of the clip
DETECTOR = os.environ.get("KIOSK_TEST_FACE_DETECTOR", "")  # "": the config's default


class AttackVideos:
    """Attack videos written on first use and kept for the session (~10-30 s each)."""

    def __init__(self, folder: Path, face_data: Path) -> None:
        self.folder, self.face_data = folder, face_data
        self.made: dict[tuple[str, str], Path] = {}

    def get(self, elder: str, kind: str) -> Path:
        if (elder, kind) not in self.made:
            self.made[elder, kind] = write_attack_video(
                self.face_data / ENROLLED[elder],
                self.folder / f"{elder}-{kind}.mp4",
                ATTACKS[kind],
            )
        return self.made[elder, kind]


@pytest.fixture(scope="session")
def attack_videos(tmp_path_factory: pytest.TempPathFactory, face_data: Path) -> AttackVideos:
    return AttackVideos(tmp_path_factory.mktemp("attacks"), face_data)


@dataclass
class Played:
    records: list[MealRecord]
    checkin_at_s: float | None  # video time of the first accepted check-in
    frames_analyzed: int
    refusals: list[str]
    encode_ms_p50: float | None  # the worker's encoding time on this machine (~80 ms idle)


def play(tmp_path: Path, face_data: Path, video: Path, face: str = "") -> Played:
    """The video as the kiosk's camera, the three elders enrolled, default face settings
    (`face`: YAML flow-mapping entries that override them)."""
    clock = Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))
    entries = ", ".join(e for e in (face, f"detector: {DETECTOR}" if DETECTOR else "") if e)
    config = parse_config(BASE_CONFIG + (f"face: {{{entries}}}\n" if entries else ""))
    assert config.face.liveness == "parallax"  # the default under test
    data = tmp_path / "data"
    store = Store(data / "kiosk.db")
    store.upgrade_schema()
    apply_rows(store, [elder_row(n) for n in (1, 2, 3)], clock(), source="test")
    enroller = Enroller(
        TemplateStore(store, FaceKey.load(data)), 0.45, 0.08, detector=config.face.detector
    )
    for elder, photo in ENROLLED.items():
        result = enroller.enrol(elder, load_image(face_data / photo), "consent-test", clock())
        assert isinstance(result, Enrolled), (photo, result)
    services = build_services(config, data, readers=[], store=store, clock=clock)
    camera = Camera(str(video), loop=False)
    build_face(services, camera=camera)
    worker = services.face
    assert worker is not None
    stop = threading.Event()
    cam_thread = threading.Thread(target=camera.run, args=(stop,), daemon=True)
    cam_thread.start()
    worker.start(stop)
    checkin_at: float | None = None
    probe = cv2.VideoCapture(str(video))
    native_fps = probe.get(cv2.CAP_PROP_FPS) or FPS
    probe.release()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = camera.status()
            if checkin_at is None and worker.checkins:
                checkin_at = status.frames / native_fps
            if status.state is CameraState.STOPPED:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the video did not finish: {camera.status()}")
        time.sleep(0.5)  # the worker finishes the frame it holds
    finally:
        stop.set()
        worker.join()
        cam_thread.join(5)
    refusals = [e.data.get("refusal") or "" for e in services.bus.recent("checkin", 50)]
    with store.read() as session:
        rows = list(session.scalars(select(MealRecord)))
    analyzed, p50 = worker.frames_analyzed, worker.status().encode_ms_p50
    store.close()
    return Played(rows, checkin_at, analyzed, refusals, p50)


@pytest.mark.parametrize(("elder", "kind"), VIDEOS, ids=[f"{e}-{k}" for e, k in VIDEOS])
def test_a_photo_attack_checks_nobody_in(
    tmp_path: Path,
    face_data: Path,
    attack_videos: AttackVideos,
    elder: str,
    kind: str,
) -> None:
    played = play(tmp_path, face_data, attack_videos.get(elder, kind))
    # The pipeline ran on the attack (the motion gate rests while the sheet barely moves): at
    # least a liveness window's worth of analysed frames (4), fewer on a starved machine.
    assert played.frames_analyzed >= 4, played
    assert played.records == [], [(r.elder_id, r.liveness) for r in played.records]
    log.warning("attack %s/%s: refusals %s", elder, kind, played.refusals)


@pytest.mark.parametrize("agree", ["", "agree_frames: 1, agree_window: 1"], ids=["2of3", "1of1"])
def test_the_live_clip_checks_lin_in_with_default_liveness(
    tmp_path: Path, face_data: Path, agree: str
) -> None:
    """Default settings (2 of 3 frames must agree), and single-frame decisions for the cost
    of the agreement in time to check-in (logged; timings are not asserted).

    His face is usable for only ~4 s of the clip, and on this shared machine one play in
    four measured under load ends without a head turn the check accepts (docs/face.md): he
    gets "请刷卡" and, like an elder at the kiosk, may step up again. So: checked in within
    three attempts (each a fresh kiosk), and never anyone else."""
    if not (face_data / CLIP).exists():
        pytest.skip(f"{CLIP} not found in {face_data}")
    for attempt in range(1, ATTEMPTS + 1):
        played = play(tmp_path / f"attempt-{attempt}", face_data, face_data / CLIP, agree)
        if played.records:
            break
        log.warning("live clip (%s): attempt %d refused: %s", agree, attempt, played.refusals)
    slow = played.encode_ms_p50 is not None and played.encode_ms_p50 > STARVED_MS
    if not played.records and slow:
        # His face is usable for ~4 s of the clip; at several times the design's frame time
        # the check sees too few frames to judge anything (a failure here says nothing).
        pytest.skip(
            f"machine too loaded to judge liveness in real time: encoding p50 "
            f"{played.encode_ms_p50:.0f} ms (~80 ms on an idle 2-core machine; skipped above "
            f"{STARVED_MS} ms)"
        )
    assert [(r.elder_id, r.method, r.liveness) for r in played.records] == [
        ("E0001", "face", "parallax")
    ]
    assert played.checkin_at_s is not None
    log.warning(
        "live clip (%s): checked in at %.1f s of the clip, %.1f s after his face appears "
        "(encoding p50 %s ms)",
        agree or "2 of 3",
        played.checkin_at_s,
        played.checkin_at_s - CLIP_FACE_FROM_S,
        played.encode_ms_p50,
    )
