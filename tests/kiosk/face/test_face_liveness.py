"""LivenessCheck on synthetic landmark sequences (no dlib)."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.face.liveness import (
    LivenessCheck,
    LivenessMode,
    LivenessState,
    TurnDirection,
    eye_aspect_ratio,
    head_yaw,
)

FPS = 10.0


def eye(cx: float, cy: float, ear: float, width: float = 30.0) -> list[tuple[float, float]]:
    """Six points in dlib order whose EAR is exactly `ear`."""
    h = ear * width / 2
    x0 = cx - width / 2
    return [
        (x0, cy),
        (x0 + width / 3, cy - h),
        (x0 + 2 * width / 3, cy - h),
        (x0 + width, cy),
        (x0 + 2 * width / 3, cy + h),
        (x0 + width / 3, cy + h),
    ]


def face(ear: float = 0.3, yaw: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    return {
        "left_eye": eye(100, 100, ear),
        "right_eye": eye(160, 100, ear),
        "nose_bridge": [(130, 105), (130, 115), (130, 125), (130 + yaw * 60, 135)],
    }


def run(check: LivenessCheck, frames: list[dict | None], t0: float = 0.0) -> LivenessState:
    check.start(now=t0)
    state = check.state
    for i, marks in enumerate(frames):
        state = check.update(marks, now=t0 + i / FPS)
    return state


def test_geometry_helpers() -> None:
    assert eye_aspect_ratio(eye(0, 0, 0.27)) == pytest.approx(0.27)
    assert head_yaw(face(yaw=0.0)) == pytest.approx(0.0)
    assert head_yaw(face(yaw=0.3)) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        eye_aspect_ratio(eye(0, 0, 0.3)[:5])


def test_a_blink_passes() -> None:
    check = LivenessCheck(LivenessMode.BLINK)
    frames = [face(0.3)] * 5 + [face(0.12)] * 2 + [face(0.3)] * 2
    assert run(check, frames) == LivenessState.PASSED
    assert check.outcome == "blink"


def test_narrow_eyes_blink_relative_to_their_own_baseline() -> None:
    """An elder whose open eyes have EAR 0.17 (below common absolute thresholds) still passes."""
    check = LivenessCheck(LivenessMode.BLINK)
    frames = [face(0.17)] * 5 + [face(0.09)] + [face(0.17)] * 2
    assert run(check, frames) == LivenessState.PASSED


def test_a_still_photo_times_out() -> None:
    """The same landmarks every frame (a photo, with a little detector jitter) never blink."""
    rng = np.random.default_rng(0)
    check = LivenessCheck(LivenessMode.BLINK, timeout_s=3.0)
    frames = [face(0.3 * (1 + rng.uniform(-0.04, 0.04))) for _ in range(40)]
    assert run(check, frames) == LivenessState.FAILED
    assert check.outcome == "failed: timeout, no blink"


def test_eyes_closed_on_arrival_and_opened_once_is_not_a_blink() -> None:
    check = LivenessCheck(LivenessMode.BLINK, timeout_s=2.0, min_open_frames=3)
    frames = [face(0.12)] * 3 + [face(0.3)] * 2 + [None] * 20
    assert run(check, frames) == LivenessState.FAILED


def test_missing_faces_are_skipped_but_the_clock_runs() -> None:
    check = LivenessCheck(LivenessMode.BLINK, timeout_s=5.0)
    frames = [face(0.3)] * 4 + [None] * 5 + [face(0.1), face(0.3)]
    assert run(check, frames) == LivenessState.PASSED
    check = LivenessCheck(LivenessMode.BLINK, timeout_s=1.0)
    assert run(check, [face(0.3)] * 4 + [None] * 20) == LivenessState.FAILED


def test_blink_then_turn() -> None:
    check = LivenessCheck(LivenessMode.BLINK_TURN)
    blink = [face(0.3)] * 5 + [face(0.1), face(0.3)]
    assert run(check, blink) == LivenessState.PENDING
    assert check.detail.startswith("blink seen")
    for i, yaw in enumerate([0.05, 0.1, 0.25]):
        check.update(face(0.3, yaw), now=1.0 + i / FPS)
    assert check.state == LivenessState.PASSED
    assert check.outcome == "blink+turn"


def test_turn_is_measured_from_the_starting_pose_and_direction() -> None:
    # A camera mounted off-axis: the frontal face already reads yaw 0.3.
    check = LivenessCheck(LivenessMode.BLINK_TURN, turn=TurnDirection.IMAGE_LEFT, timeout_s=3)
    frames = [face(0.3, 0.3)] * 5 + [face(0.1, 0.3), face(0.3, 0.3)]
    frames += [face(0.3, 0.6)] * 5  # turned 0.3 the wrong way: does not count
    frames += [face(0.3, 0.05)]  # 0.25 towards image left
    assert run(check, frames) == LivenessState.PASSED


def test_blink_without_turn_fails_in_blink_turn_mode() -> None:
    check = LivenessCheck(LivenessMode.BLINK_TURN, timeout_s=2.0)
    frames = [face(0.3)] * 5 + [face(0.1)] + [face(0.3)] * 30
    assert run(check, frames) == LivenessState.FAILED
    assert check.outcome == "failed: timeout, no turn"


def test_off_passes_at_once() -> None:
    check = LivenessCheck("off")
    assert check.state == LivenessState.PASSED
    assert check.update(None, now=0.0) == LivenessState.PASSED
    assert check.outcome == "off"
