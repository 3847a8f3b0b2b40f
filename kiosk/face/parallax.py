"""Passive liveness from natural head motion: a head turns in depth, a photo only moves flat.

Built only from dlib's 5-point landmarks (the model the encoder already runs for alignment;
public domain, trained on dlib's own 5-point data set, see docs/face.md), so it costs no extra
model, no extra inference, and no licence question.

The physics: when a real head turns (yaw) by a few degrees, two things happen together,
because the eyes sit on a curved surface and the nose stands ~3 cm in front of them:

- the eye on the side turning away is foreshortened much more than the other one, so the log
  ratio of the two eye widths (outer to inner corner) swings: ~1.4 x the yaw in radians;
- the nose tip swings sideways relative to the midpoint of the eyes, *towards the same eye*:
  ~0.55 x the yaw, in inter-ocular distances.

A photo, on paper or a phone, is a plane: any motion of it (shift, rotation, scale, tilt,
perspective) maps it by one homography. An affine map preserves the ratio of lengths along a
line, so the eye-width ratio does not change at all; the perspective of a tilted sheet changes
it by a tenth of what a head turn does. The nose offset of a photo does move under a sheared
or tilted view, but without the eye ratio following it. So the check asks, over a short window
of analysed frames, that both cues swing by a real amount AND swing together (positive
correlation). Measured on the Hamilton clip against photo-attack videos (moved, rotated,
scaled, tilted in perspective, screen moiré and glare): docs/face.md.

What passes it: a video replayed on a screen (it contains the real head motion), a mask, and
probably a photo bent round a cylinder and turned far. It stops the commonest fraud, a flat
photo; it is not certified presentation-attack detection.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]

# Measured defaults (docs/face.md, "Liveness from head motion"): windows of 8 analysed frames
# (~1 s). At 0.15/0.15 a few windows of tilted-photo attacks passed (Obama's photo tilted:
# 3 of 293); at 0.20/0.20 none of ~2,000 attack windows passes and the live clip passes 3
# disjoint windows, the first 0.7 s after his face appears.
DEFAULT_WINDOW = 8
DEFAULT_MIN_RATIO_RANGE = 0.2  # log eye-width ratio, peak to peak in the window
DEFAULT_MIN_NOSE_RANGE = 0.2  # nose offset, inter-ocular distances, peak to peak
DEFAULT_MIN_CORRELATION = 0.7  # the two cues must move together
MAX_GAP_S = 1.0  # a longer gap between frames starts a new window


@dataclass(frozen=True)
class YawCues:
    eye_ratio: float  # log(width of eye A / width of eye B)
    nose_offset: float  # nose from the eyes' midpoint along A->B, in inter-ocular distances
    interocular: float  # pixels, between the eye centres


def yaw_cues(points: Sequence[Point]) -> YawCues | None:
    """The two cues from dlib's 5 points (eye A corners 0-1, eye B corners 2-3, nose 4);
    None for a degenerate set (zero-width eye)."""
    if len(points) != 5:
        raise ValueError(f"the 5-point model gives 5 points, got {len(points)}")
    p = np.asarray(points, dtype=np.float64)
    width_a = float(np.linalg.norm(p[0] - p[1]))
    width_b = float(np.linalg.norm(p[2] - p[3]))
    centre_a, centre_b = (p[0] + p[1]) / 2, (p[2] + p[3]) / 2
    axis = centre_b - centre_a
    interocular = float(np.linalg.norm(axis))
    if width_a <= 0 or width_b <= 0 or interocular <= 0:
        return None
    offset = float((p[4] - (centre_a + centre_b) / 2) @ axis) / interocular**2
    return YawCues(math.log(width_a / width_b), offset, interocular)


@dataclass(frozen=True)
class ParallaxScore:
    ratio_range: float
    nose_range: float
    correlation: float
    passed: bool


class ParallaxWindow:
    """The last `window` frames of one face; `add` answers whether they show a head turn."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        min_ratio_range: float = DEFAULT_MIN_RATIO_RANGE,
        min_nose_range: float = DEFAULT_MIN_NOSE_RANGE,
        min_correlation: float = DEFAULT_MIN_CORRELATION,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        if window < 3:
            raise ValueError(f"a window needs at least 3 frames, got {window}")
        self.window = window
        self.min_ratio_range = min_ratio_range
        self.min_nose_range = min_nose_range
        self.min_correlation = min_correlation
        self.max_gap_s = max_gap_s
        self._cues: deque[YawCues] = deque(maxlen=window)
        self._last: float | None = None
        self.best: ParallaxScore | None = None  # the strongest window seen, for the log

    def reset(self) -> None:
        self._cues.clear()
        self._last = None
        self.best = None

    def add(self, points: Sequence[Point], now: float) -> ParallaxScore | None:
        """One frame's 5 points; the score of the full window ending here (None until the
        window is full)."""
        if self._last is not None and now - self._last > self.max_gap_s:
            self._cues.clear()
        self._last = now
        cues = yaw_cues(points)
        if cues is None:
            return None
        self._cues.append(cues)
        if len(self._cues) < self.window:
            return None
        score = self.score()
        if self.best is None or _strength(score, self) > _strength(self.best, self):
            self.best = score
        return score

    def score(self) -> ParallaxScore:
        ratio = np.array([c.eye_ratio for c in self._cues])
        nose = np.array([c.nose_offset for c in self._cues])
        ratio_range, nose_range = float(np.ptp(ratio)), float(np.ptp(nose))
        flat = ratio.std() == 0 or nose.std() == 0  # no motion at all: no correlation
        corr = 0.0 if flat else float(np.corrcoef(ratio, nose)[0, 1])
        passed = (
            ratio_range >= self.min_ratio_range
            and nose_range >= self.min_nose_range
            and corr >= self.min_correlation
        )
        return ParallaxScore(round(ratio_range, 3), round(nose_range, 3), round(corr, 3), passed)


def _strength(score: ParallaxScore, w: ParallaxWindow) -> float:
    """How close a window came to passing: the weakest of the three criteria, relative."""
    return min(
        score.ratio_range / w.min_ratio_range,
        score.nose_range / w.min_nose_range,
        score.correlation / w.min_correlation,
    )
