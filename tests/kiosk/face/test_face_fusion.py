"""Frame fusion on synthetic vectors: noise averages out, agreement on the nearest elder holds."""

from __future__ import annotations

import numpy as np

from kiosk.face.fusion import FaceFrame, fused_decision
from kiosk.face.matcher import ENCODING_DIM, FaceMatcher, Match, Unknown


def unit(axis: int, length: float = 1.0) -> np.ndarray:
    v = np.zeros(ENCODING_DIM, dtype=np.float32)
    v[axis] = length
    return v


ELDER = unit(0)
OTHER = unit(1)  # sqrt(2) from the elder


def matcher() -> FaceMatcher:
    m = FaceMatcher(threshold=0.45, min_margin=0.08)
    m.set_roster([("elder", ELDER), ("other", OTHER)])
    return m


def noisy_frames(n: int, offset: float) -> list[np.ndarray]:
    """Frames of the elder each `offset` away from his template, in different directions
    (sensor noise): every single frame is outside the threshold."""
    return [ELDER + unit(10 + k, offset) for k in range(n)]


def test_frames_each_outside_the_threshold_match_together() -> None:
    m = matcher()
    frames = noisy_frames(3, 0.5)
    assert all(isinstance(m.match(f), Unknown) for f in frames)
    window: list[FaceFrame] = [("elder", f) for f in frames]
    decision = fused_decision(m, window, need=2)
    assert isinstance(decision, Match)
    assert decision.elder_id == "elder"
    assert decision.distance < 0.45  # 0.5 / sqrt(3)


def test_a_systematic_offset_does_not_average_away() -> None:
    """Another face is off in the same direction in every frame: the mean stays outside."""
    m = matcher()
    window: list[FaceFrame] = [("elder", ELDER + unit(10, 0.5)) for _ in range(3)]
    assert isinstance(fused_decision(m, window, need=2), Unknown)


def test_only_frames_nearest_the_newest_frames_elder_are_fused() -> None:
    m = matcher()
    near_other = OTHER + unit(20, 0.1)
    window: list[FaceFrame] = [
        ("elder", noisy_frames(1, 0.5)[0]),
        ("other", near_other),
        ("elder", noisy_frames(2, 0.5)[1]),
    ]
    decision = fused_decision(m, window, need=2)
    assert isinstance(decision, Match) and decision.elder_id == "elder"


def test_fewer_agreeing_frames_than_needed_decide_nothing() -> None:
    m = matcher()
    window: list[FaceFrame] = [("other", OTHER), None, ("elder", ELDER)]
    assert fused_decision(m, window, need=2) is None  # a single frame of the elder
    assert fused_decision(m, [("elder", ELDER), ("elder", ELDER)], need=3) is None


def test_one_frame_is_never_fused_even_when_one_is_enough() -> None:
    """agree_frames 1: the worker's single-frame decision applies, fusion adds nothing."""
    assert fused_decision(matcher(), [("elder", ELDER)], need=1) is None


def test_no_face_or_no_nearest_in_the_newest_frame_decides_nothing() -> None:
    m = matcher()
    assert fused_decision(m, [("elder", ELDER), ("elder", ELDER), None], need=2) is None
    assert fused_decision(m, [("elder", ELDER), (None, ELDER)], need=2) is None
    assert fused_decision(m, [], need=2) is None


def test_a_mean_that_falls_nearest_somebody_else_claims_nobody() -> None:
    """An elder with two templates far apart (say, with and without glasses) has a cell that
    is not convex: one frame near each template, the mean between them nearest "other"."""
    m = FaceMatcher(threshold=0.45, min_margin=0.0)
    m.set_roster(
        [("elder", unit(0, 0.0)), ("elder", unit(0, 2.0)), ("other", unit(0, 1.0) + unit(1, 0.3))]
    )
    window: list[FaceFrame] = [("elder", unit(0, 0.2)), ("elder", unit(0, 1.8))]
    assert all(m.nearest(f[1]).elder_id == "elder" for f in window if f is not None)
    assert m.nearest(unit(0, 1.0)).elder_id == "other"
    assert fused_decision(m, window, need=2) is None
