"""Decisions over several frames: a face check-in needs 2 of the last 3 analysed frames with
a face in the visit.

The worker runs for real (motion gate, matcher, guard, check-in service and database); only
the pipeline is replaced by a script of what each frame "showed", so the test controls which
frames match.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from kiosk.config import ConfigError, parse_config
from kiosk.face import worker as worker_module
from kiosk.face.detect import FaceBox
from kiosk.face.pipeline import FaceAnalysis
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.face.worker import FaceWorker
from kiosk.runtime.daemon import build_services
from models.db import Store
from models.roster import apply_rows
from models.tables import MealRecord
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ, Clock, elder_row

ELDER = np.zeros(128, np.float32)
ELDER[0] = 1.0
STRANGER = np.zeros(128, np.float32)
STRANGER[1] = 1.0  # distance sqrt(2) from the elder: Unknown
BOX = FaceBox(100, 300, 300, 100)


class ScriptedPipeline:
    """Each frame's analysis from a script: "E" the elder's face, "S" a stranger, "-" none,
    "~" none after 2 s without a face (longer than VISIT_GAP_S: the visit ends), "N" the elder
    on a noisy camera: 0.5 from his template (outside the 0.45 threshold), each frame in
    another direction."""

    def __init__(self, script: str) -> None:
        self.script = list(script)
        self.noisy = 0

    def analyze_bgr(self, _frame: np.ndarray) -> FaceAnalysis:
        shown = self.script.pop(0)
        if shown in "-~":
            return FaceAnalysis([], None, None, reason="no face")
        encoding = STRANGER.copy() if shown == "S" else ELDER.copy()
        if shown == "N":
            self.noisy += 1
            encoding[10 + self.noisy] = 0.5
        return FaceAnalysis([BOX], BOX, encoding)


class NoCamera:
    def wait_newer(self, seq: int, timeout: float) -> None:
        return None


class SteppedTime:
    """The worker's `time`: monotonic() stands still unless the script lets seconds pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def run(
    tmp_path: Path, script: str, face: str = "", monkeypatch: pytest.MonkeyPatch | None = None
) -> list[tuple[int, MealRecord]]:
    """Feed the script frame by frame (liveness off); (frame index, record) per check-in."""
    stepped = SteppedTime()
    if monkeypatch is not None:
        monkeypatch.setattr(worker_module, "time", stepped)
    clock = Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))
    config = parse_config(BASE_CONFIG + f"face: {{liveness: off{face}}}\n")
    store = Store(tmp_path / "data" / "kiosk.db")
    store.upgrade_schema()
    apply_rows(store, [elder_row(1)], clock(), source="test")
    services = build_services(config, tmp_path / "data", readers=[], store=store, clock=clock)
    templates = TemplateStore(store, FaceKey.load(tmp_path / "data"))
    templates.add("E0001", ELDER, quality=200, face_px=200, consent_ref="c", at=clock())
    worker = FaceWorker(
        config.face, NoCamera(), services.checkin, templates,  # type: ignore[arg-type]
        pipeline=ScriptedPipeline(script),  # type: ignore[arg-type]
    )  # fmt: skip
    worker.reload()
    rng = np.random.default_rng(0)
    checkins = []
    for n, shown in enumerate(script):
        if shown == "~":
            stepped.now += 2.0
        frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)  # motion on every frame
        result = worker.process(frame, captured=0.0)
        if result is not None and result.accepted:
            with store.read() as session:
                checkins.append((n, session.scalars(select(MealRecord)).one()))
    store.close()
    return checkins


def test_two_of_three_frames_check_in_on_the_second_agreeing_frame(tmp_path: Path) -> None:
    checkins = run(tmp_path, "SESE---")
    assert [n for n, _ in checkins] == [3]  # E at 1 alone is not enough; E at 3 makes 2 of 3
    assert checkins[0][1].elder_id == "E0001"


def test_single_matching_frames_check_nobody_in(tmp_path: Path) -> None:
    assert run(tmp_path, "E-SSE-SSE--SSESSE") == []


def test_frames_without_a_face_are_no_vote(tmp_path: Path) -> None:
    """A dim room: the detector finds the elder's face in some frames only. The frames in
    between do not break the agreement of the frames that found him."""
    checkins = run(tmp_path, "E--E--")
    assert [n for n, _ in checkins] == [3]


def test_a_visit_gap_clears_the_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No face for longer than VISIT_GAP_S ends the visit: a match before it and one after
    it are two visits' single frames, not an agreement."""
    assert run(tmp_path, "E~E~E~", monkeypatch=monkeypatch) == []
    checkins = run(tmp_path / "same", "E-E", monkeypatch=monkeypatch)
    assert [n for n, _ in checkins] == [2]


def test_one_of_one_restores_single_frame_decisions(tmp_path: Path) -> None:
    checkins = run(tmp_path, "SE--", ", agree_frames: 1, agree_window: 1")
    assert [n for n, _ in checkins] == [1]


def test_agree_frames_cannot_exceed_the_window() -> None:
    with pytest.raises(ConfigError, match="agree_frames"):
        parse_config(BASE_CONFIG + "face: {agree_frames: 3, agree_window: 2}\n")


def test_noisy_frames_check_in_on_their_mean(tmp_path: Path) -> None:
    """Each noisy frame alone is Unknown; two of them nearest the elder fuse into a match."""
    checkins = run(tmp_path, "NSN--")
    assert [n for n, _ in checkins] == [2]
    assert checkins[0][1].elder_id == "E0001"


def test_without_fusion_noisy_frames_check_nobody_in(tmp_path: Path) -> None:
    assert run(tmp_path, "NSNNN--", ", fuse_frames: false") == []


def test_a_single_noisy_frame_among_strangers_checks_nobody_in(tmp_path: Path) -> None:
    assert run(tmp_path, "SNS-SNSS-SSN") == []
