"""MotionGate on synthetic frames."""

from __future__ import annotations

import numpy as np

from kiosk.face.motion import MotionGate


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A textured scene, smooth enough that a 80 px thumbnail is representative.
    base = rng.integers(60, 180, size=(48, 64, 3), dtype=np.uint8)
    return np.kron(base, np.ones((10, 10, 1), dtype=np.uint8))  # 480 x 640


def test_first_frame_opens_the_gate() -> None:
    assert MotionGate().update(background(), now=0.0)


def test_static_scene_closes_the_gate_after_the_hold() -> None:
    gate = MotionGate(hold_s=1.0)
    frame = background()
    gate.update(frame, now=0.0)
    assert gate.update(frame.copy(), now=0.5)  # still within hold of the first frame
    assert not gate.update(frame.copy(), now=1.6)
    assert gate.last_score == 0.0


def test_sensor_noise_is_not_motion() -> None:
    gate = MotionGate(hold_s=0.0)
    frame = background()
    rng = np.random.default_rng(1)
    gate.update(frame, now=0.0)
    for step in range(1, 5):
        noise = rng.integers(-6, 7, size=frame.shape)
        noisy = np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)
        assert not gate.update(noisy, now=float(step))


def test_a_person_stepping_in_opens_the_gate_and_the_hold_keeps_it_open() -> None:
    gate = MotionGate(hold_s=2.0)
    frame = background()
    gate.update(frame, now=0.0)
    assert not gate.update(frame, now=5.0)
    person = frame.copy()
    person[100:400, 200:420] = 230  # a bright face-sized blob enters
    assert gate.update(person, now=5.1)
    assert gate.last_score > 0.1
    # They now stand still: the gate stays open for the hold time, then closes.
    assert gate.update(person, now=6.5)
    assert not gate.update(person, now=7.2)


def test_small_change_below_the_fraction_is_ignored() -> None:
    gate = MotionGate(min_changed_fraction=0.05, hold_s=0.0)
    frame = background()
    gate.update(frame, now=0.0)
    flicker = frame.copy()
    flicker[0:20, 0:20] = 255  # a blinking LED in a corner: ~0.1 % of the frame
    assert not gate.update(flicker, now=1.0)
