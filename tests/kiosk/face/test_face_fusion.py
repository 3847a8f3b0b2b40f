"""Frame fusion on synthetic vectors: noise averages out, agreement on the nearest elder holds."""

from __future__ import annotations

import numpy as np

from kiosk.face.fusion import FaceFrame, fused_decision
from kiosk.face.matcher import ENCODING_DIM, FaceMatcher, Match, Unknown

WITHIN = 0.6  # the worker's threshold + slack


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


def frames(m: FaceMatcher, *encodings: np.ndarray | None) -> list[FaceFrame]:
    """The window as the worker keeps it: each frame's nearest elder and distance to him."""
    out: list[FaceFrame] = []
    for enc in encodings:
        if enc is None:
            out.append(None)
        else:
            nearest = m.nearest(enc)
            out.append((nearest.elder_id, nearest.distance, enc))
    return out


def noisy(k: int, offset: float = 0.5) -> np.ndarray:
    """A frame of the elder `offset` from his template in its own direction (sensor noise)."""
    return ELDER + unit(10 + k, offset)


def test_frames_each_outside_the_threshold_match_together() -> None:
    m = matcher()
    shots = [noisy(k) for k in range(3)]
    assert all(isinstance(m.match(f), Unknown) for f in shots)
    decision = fused_decision(m, frames(m, *shots), need=2, within=WITHIN)
    assert isinstance(decision, Match)
    assert decision.elder_id == "elder"
    assert decision.distance < 0.45  # 0.5 / sqrt(3)


def test_a_systematic_offset_does_not_average_away() -> None:
    """Another face is off in the same direction in every frame: the mean stays outside."""
    m = matcher()
    window = frames(m, *[ELDER + unit(10, 0.5)] * 3)
    assert isinstance(fused_decision(m, window, need=2, within=WITHIN), Unknown)


def test_only_frames_nearest_the_newest_frames_elder_are_fused() -> None:
    m = matcher()
    window = frames(m, noisy(0), OTHER + unit(20, 0.1), noisy(1))
    decision = fused_decision(m, window, need=2, within=WITHIN)
    assert isinstance(decision, Match) and decision.elder_id == "elder"


def test_a_stranger_whose_nearest_is_the_elder_is_not_fused_with_him() -> None:
    """With one elder enrolled everybody's nearest elder is him: a stranger's frame (far
    beyond `within`) must not be averaged with his."""
    m = FaceMatcher(threshold=0.45, min_margin=0.08)
    m.set_roster([("elder", ELDER)])
    window = frames(m, noisy(0), OTHER, noisy(1, 0.7))
    assert window[1] is not None and window[1][0] == "elder"
    assert fused_decision(m, window, need=2, within=WITHIN) is None


def test_fewer_agreeing_frames_than_needed_decide_nothing() -> None:
    m = matcher()
    assert fused_decision(m, frames(m, OTHER, None, ELDER), need=2, within=WITHIN) is None
    assert fused_decision(m, frames(m, ELDER, ELDER), need=3, within=WITHIN) is None


def test_one_frame_is_never_fused_even_when_one_is_enough() -> None:
    """agree_frames 1: the worker's single-frame decision applies, fusion adds nothing."""
    m = matcher()
    assert fused_decision(m, frames(m, ELDER), need=1, within=WITHIN) is None


def test_no_face_in_the_newest_frame_or_an_empty_roster_decides_nothing() -> None:
    m = matcher()
    assert fused_decision(m, frames(m, ELDER, ELDER, None), need=2, within=WITHIN) is None
    assert fused_decision(m, [], need=2, within=WITHIN) is None
    empty = FaceMatcher()
    assert fused_decision(empty, frames(empty, ELDER, ELDER), need=2, within=WITHIN) is None


def test_a_mean_that_falls_nearest_somebody_else_claims_nobody() -> None:
    """An elder with two templates far apart (say, with and without glasses) has a cell that
    is not convex: one frame near each template, the mean between them nearest "other"."""
    m = FaceMatcher(threshold=0.45, min_margin=0.0)
    m.set_roster(
        [("elder", unit(0, 0.0)), ("elder", unit(0, 2.0)), ("other", unit(0, 1.0) + unit(1, 0.3))]
    )
    window = frames(m, unit(0, 0.2), unit(0, 1.8))
    assert all(f is not None and f[0] == "elder" for f in window)
    assert m.nearest(unit(0, 1.0)).elder_id == "other"
    assert fused_decision(m, window, need=2, within=WITHIN) is None
