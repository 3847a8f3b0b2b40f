"""Liveness: is the face in front of the camera a person, or a photo of one?

Modes (config.yaml face.liveness):

- `parallax` (default): passive, from natural head motion, using only dlib's 5-point
  landmarks, which the encoder computes anyway (public domain; kiosk.face.parallax). Nothing
  is asked of the elder.
- `blink`, `blink+turn`: from 68-point landmarks, for deployments that have settled that
  model's licence (below).

Blink: the eye aspect ratio (EAR, Soukupová and Čech, 2016) is the eye's height over its
width from six landmarks; it drops sharply while the eye closes. The thresholds are *relative*
to the elder's own open-eye EAR (the median of recent frames), because the absolute open-eye
EAR differs a lot between people: narrow eyes and the drooping eyelids of old age would fail
an absolute threshold tuned on young Western faces.

The head turn uses the nose tip's horizontal offset from the midpoint of the eyes, divided by
the distance between the eyes (so it does not depend on face size), relative to its value when
the check started (so a camera mounted off-axis does not matter).

Limits (see docs/face.md): a video replayed on a phone blinks and turns; bending a printed
photo can mimic a blink. This raises the cost of the commonest fraud (a photo), it is not
certified presentation-attack detection.

The 68 landmarks come from dlib's shape_predictor_68_face_landmarks, whose training data
(iBUG 300-W) excludes commercial use; see docs/face.md before choosing blink or blink+turn.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Mapping, Sequence
from enum import StrEnum

from kiosk.face.parallax import ParallaxScore, ParallaxWindow

Point = tuple[float, float]
LandmarkSet = Mapping[str, Sequence[Point]]


class LivenessMode(StrEnum):
    OFF = "off"
    PARALLAX = "parallax"  # 5-point landmarks only: licence-clean, passive
    BLINK = "blink"
    BLINK_TURN = "blink+turn"


class LivenessState(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class TurnDirection(StrEnum):
    """In image coordinates: with a mirrored preview, IMAGE_LEFT is the elder's right."""

    ANY = "any"
    IMAGE_LEFT = "image_left"
    IMAGE_RIGHT = "image_right"


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _centre(points: Sequence[Point]) -> Point:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def eye_aspect_ratio(eye: Sequence[Point]) -> float:
    """EAR of one eye from its six landmarks in dlib order (corner, top, top, corner, bottom,
    bottom): (|p2-p6| + |p3-p5|) / (2 |p1-p4|)."""
    if len(eye) != 6:
        raise ValueError(f"an eye has 6 landmarks, got {len(eye)}")
    width = _dist(eye[0], eye[3])
    if width == 0:
        return 0.0
    return (_dist(eye[1], eye[5]) + _dist(eye[2], eye[4])) / (2.0 * width)


def mean_ear(landmarks: LandmarkSet) -> float:
    return (eye_aspect_ratio(landmarks["left_eye"]) + eye_aspect_ratio(landmarks["right_eye"])) / 2


def head_yaw(landmarks: LandmarkSet) -> float:
    """Nose tip x offset from the eyes' midpoint, in inter-ocular distances (0 = frontal;
    positive = nose towards image right)."""
    left, right = _centre(landmarks["left_eye"]), _centre(landmarks["right_eye"])
    interocular = _dist(left, right)
    if interocular == 0:
        return 0.0
    nose = landmarks["nose_bridge"][-1]  # point 30: the tip of the nose
    return (nose[0] - (left[0] + right[0]) / 2) / interocular


class LivenessCheck:
    """Feed it the landmarks of the face being checked, frame by frame, until it decides."""

    def __init__(
        self,
        mode: LivenessMode | str = LivenessMode.BLINK,
        timeout_s: float = 6.0,
        closed_ratio: float = 0.75,
        reopen_ratio: float = 0.9,
        min_open_frames: int = 3,
        turn_delta: float = 0.2,
        turn: TurnDirection | str = TurnDirection.ANY,
    ) -> None:
        """`closed_ratio`: an eye counts as closed below this fraction of the open-eye EAR;
        `reopen_ratio`: open again above this fraction (hysteresis against jitter).
        `min_open_frames`: open-eye frames needed before a blink can count, so a face that
        arrives with closed eyes cannot pass by opening them once.
        `turn_delta`: the yaw change (inter-ocular distances) that counts as a head turn."""
        self.mode = LivenessMode(mode)
        self.timeout_s = timeout_s
        self.closed_ratio = closed_ratio
        self.reopen_ratio = reopen_ratio
        self.min_open_frames = min_open_frames
        self.turn_delta = turn_delta
        self.turn = TurnDirection(turn)
        self.reset()

    def reset(self) -> None:
        self.state = (
            LivenessState.PASSED if self.mode == LivenessMode.OFF else LivenessState.PENDING
        )
        self.detail = {
            LivenessMode.OFF: "off",
            LivenessMode.PARALLAX: "waiting for head motion",
        }.get(self.mode, "waiting for a blink")
        self._parallax = ParallaxWindow()
        self._started: float | None = None
        self._open: deque[float] = deque(maxlen=15)
        self._eyes_closed = False
        self._blinked = False
        self._yaw0: list[float] = []
        self.frames = 0

    def start(self, now: float | None = None) -> None:
        self.reset()
        self._started = time.monotonic() if now is None else now

    @property
    def outcome(self) -> str:
        """For the meal record: "off", "blink", "blink+turn", "pending" or "failed: <why>"."""
        if self.state == LivenessState.PASSED:
            return self.mode.value
        if self.state == LivenessState.FAILED:
            return f"failed: {self.detail}"
        return "pending"

    def update(self, landmarks: LandmarkSet | None, now: float | None = None) -> LivenessState:
        """One frame. `landmarks` None = no face this frame (skipped; the timeout still runs).
        The parallax mode reads the 5-point set under the key "five"; blink modes the 68-point
        groups (left_eye, right_eye, nose_bridge)."""
        now = time.monotonic() if now is None else now
        if self.state != LivenessState.PENDING:
            return self.state
        if self._started is None:
            self._started = now
        if now - self._started > self.timeout_s:
            self.state = LivenessState.FAILED
            if self.mode == LivenessMode.PARALLAX:
                best = self._parallax.best
                self.detail = "timeout, no head turn" + (f" (best {_fmt(best)})" if best else "")
            else:
                self.detail = "timeout, no turn" if self._blinked else "timeout, no blink"
            return self.state
        if landmarks is None:
            return self.state
        self.frames += 1
        if self.mode == LivenessMode.PARALLAX:
            score = self._parallax.add(landmarks["five"], now)
            if score is not None and score.passed:
                self.state, self.detail = LivenessState.PASSED, f"parallax {_fmt(score)}"
            return self.state
        if not self._blinked:
            self._feed_blink(mean_ear(landmarks), head_yaw(landmarks))
        else:
            self._feed_turn(head_yaw(landmarks))
        return self.state

    def _feed_blink(self, ear: float, yaw: float) -> None:
        baseline = (
            statistics.median(self._open) if len(self._open) >= self.min_open_frames else None
        )
        if self._eyes_closed:
            assert baseline is not None
            if ear >= self.reopen_ratio * baseline:
                self._eyes_closed = False
                self._blinked = True
                if self.mode == LivenessMode.BLINK:
                    self.state, self.detail = LivenessState.PASSED, "blink"
                else:
                    self.detail = "blink seen, waiting for a head turn"
            return
        if baseline is not None and ear < self.closed_ratio * baseline:
            self._eyes_closed = True
            return
        self._open.append(ear)
        self._yaw0.append(yaw)

    def _feed_turn(self, yaw: float) -> None:
        delta = yaw - statistics.median(self._yaw0[-15:])
        wanted = {
            TurnDirection.ANY: abs(delta),
            TurnDirection.IMAGE_RIGHT: delta,
            TurnDirection.IMAGE_LEFT: -delta,
        }[self.turn]
        if wanted >= self.turn_delta:
            self.state, self.detail = LivenessState.PASSED, "blink+turn"


def _fmt(score: ParallaxScore) -> str:
    return (
        f"eye ratio {score.ratio_range:.2f}, nose {score.nose_range:.2f}, r {score.correlation:.2f}"
    )
