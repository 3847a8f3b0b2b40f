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

# Measured defaults (docs/face.md, "Liveness from head motion"): windows of at most 8
# analysed frames within 0.9 s, judged from 4 frames on. At 0.15/0.15 a few windows of
# tilted-photo attacks passed (Obama's photo tilted: 3 of 293); at 0.20/0.20 none of the
# attack windows passes at 10, 5 or 3.3 analysed frames a second, and the live clip passes
# at all three rates.
DEFAULT_WINDOW = 8
DEFAULT_MIN_RATIO_RANGE = 0.2  # log eye-width ratio, peak to peak in the window
DEFAULT_MIN_NOSE_RANGE = 0.2  # nose offset, inter-ocular distances, peak to peak
DEFAULT_MIN_CORRELATION = 0.7  # the two cues must move together
DEFAULT_SPAN_S = 0.9  # seconds of frames a window may span
DEFAULT_MIN_FRAMES = 4  # fewer frames in that time: no judgement


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
    """The frames of one face from the last `span_s` seconds (at most `window`, at least
    `min_frames` to judge); `add` answers whether they show a head turn.

    The window is bounded in time, not only in frames: at a slower analysis rate a window of
    8 frames would span seconds, and a photo swung through its whole tilt range then shows
    more perspective change than in the ~1 s a head turn takes (measured: docs/face.md)."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        min_ratio_range: float = DEFAULT_MIN_RATIO_RANGE,
        min_nose_range: float = DEFAULT_MIN_NOSE_RANGE,
        min_correlation: float = DEFAULT_MIN_CORRELATION,
        span_s: float = DEFAULT_SPAN_S,
        min_frames: int = DEFAULT_MIN_FRAMES,
    ) -> None:
        if not 3 <= min_frames <= window:
            raise ValueError(f"need 3 <= min_frames <= window, got {min_frames}, {window}")
        self.window = window
        self.min_ratio_range = min_ratio_range
        self.min_nose_range = min_nose_range
        self.min_correlation = min_correlation
        self.span_s = span_s
        self.min_frames = min_frames
        self._cues: deque[tuple[float, YawCues]] = deque(maxlen=window)
        self.best: ParallaxScore | None = None  # the strongest window seen, for the log

    def reset(self) -> None:
        self._cues.clear()
        self.best = None

    def add(self, points: Sequence[Point], now: float) -> ParallaxScore | None:
        """One frame's 5 points; the score of the window ending here (None while it holds
        fewer than `min_frames` frames)."""
        while self._cues and now - self._cues[0][0] > self.span_s:
            self._cues.popleft()
        cues = yaw_cues(points)
        if cues is None:
            return None
        self._cues.append((now, cues))
        if len(self._cues) < self.min_frames:
            return None
        score = self.score()
        if self.best is None or _strength(score, self) > _strength(self.best, self):
            self.best = score
        return score

    def score(self) -> ParallaxScore:
        """Ranges and correlation that no single frame can carry: each is the weakest over
        the window with any one frame left out. A head turn passes through intermediate
        frames; a landmark thrown off by glare, moiré or motion blur is one frame, and on the
        screen-attack videos such a frame alone made windows pass (docs/face.md)."""
        ratio = np.array([c.eye_ratio for _, c in self._cues])
        nose = np.array([c.nose_offset for _, c in self._cues])
        ratio_range, nose_range = _range_without_one(ratio), _range_without_one(nose)
        corr = min(_correlation(np.delete(ratio, i), np.delete(nose, i)) for i in range(len(ratio)))
        passed = (
            ratio_range >= self.min_ratio_range
            and nose_range >= self.min_nose_range
            and corr >= self.min_correlation
        )
        return ParallaxScore(round(ratio_range, 3), round(nose_range, 3), round(corr, 3), passed)


def _range_without_one(values: np.ndarray) -> float:
    """Peak to peak with the frame that helps it most left out."""
    s = np.sort(values)
    return float(min(s[-2] - s[0], s[-1] - s[1]))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:  # no motion at all: no correlation
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _strength(score: ParallaxScore, w: ParallaxWindow) -> float:
    """How close a window came to passing: the weakest of the three criteria, relative."""
    return min(
        score.ratio_range / w.min_ratio_range,
        score.nose_range / w.min_nose_range,
        score.correlation / w.min_correlation,
    )
