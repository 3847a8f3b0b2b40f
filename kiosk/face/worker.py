"""The face worker thread: camera frames in, face check-ins out.

    camera.wait_newer -> MotionGate -> FacePipeline (detect, encode + 5 points [, 68 points])
        -> FaceMatcher.match -> [LivenessCheck] -> PresenceGuard -> CheckinService.check_in

Only a `Match` can lead to a check-in, and `CheckinService` stays the one place that writes
records (the rules answer "已签到" for a second meal). A face that nobody matches, or that is
too close to two elders, gets "请刷卡" once per visit, and only after it has been in view for
`PROMPT_AFTER_S` without a match: single frames of an enrolled elder often fall just outside
the strict threshold (docs/face.md: 9 of 41 clip frames within 0.45), and a "请刷卡" flashing
before "签到成功" would confuse the elder.

The worker sleeps in `wait_newer` and runs nothing heavy while the motion gate is closed or
nobody is enrolled. Templates are loaded at start and reloaded when the set in the database
changes (enrolment or consent withdrawal, also from another process such as `kiosk enroll`).
A heartbeat lets the daemon's self-check tell a hung worker from an idle one.

Liveness (default `parallax`, kiosk.face.parallax) needs a few frames of the face moving. The
frames of the current visit that came before the first match (the elder walking up, turning
to the screen) are kept and fed to the check when it starts, so an elder who moved on the way
in is not made to wait for a second window. While a parallax check is pending, frames get
only detection and the 5 points (~28 ms instead of ~46-108 ms with the encoding; one full
analysis every FULL_ANALYSIS_EVERY_S keeps identity and agreement current), so
the check sees a head turn at several times the full analysis rate; such a frame counts only
if its face is where the matched face was (same person, no identity decision made on it).

A check-in also needs agreement over frames: at least `agree_frames` of the last
`agree_window` analysed frames with a face in this visit (default 2 of 3; a frame where no
usable face was found is no vote, and no face for VISIT_GAP_S ends the visit and clears the
window) must be a Match of the same elder, or, with
`fuse_frames` (default), at least that many must have him as their nearest elder and their
mean encoding must match him (kiosk.face.fusion: on a dim, noisy camera single frames of an
enrolled elder fall just outside the threshold one by one while their mean does not). A
single frame that happens to fall within the threshold for the wrong person (a look-alike, a
face half turned) cannot check anyone in on its own.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.camera import Camera, Frame
from kiosk.checkin.rules import CheckinRequest, CheckinResult, CheckinService, Method, Refusal
from kiosk.config import FaceConfig
from kiosk.face import (
    Ambiguous,
    FaceMatcher,
    LivenessCheck,
    LivenessMode,
    LivenessState,
    Match,
    MotionGate,
    PresenceGuard,
    Unknown,
)
from kiosk.face.detect import FaceBox, choose_face, make_detector
from kiosk.face.encode import face_points_5
from kiosk.face.fusion import FaceFrame, fused_decision
from kiosk.face.pipeline import FaceAnalysis, FacePipeline
from kiosk.face.templates import FaceKeyError, TemplateStore, detector_mismatch

log = logging.getLogger(__name__)

WAIT_S = 0.5  # longest sleep in wait_newer: bounds the heartbeat interval while idle
RELOAD_POLL_S = 5.0  # how often the template set in the database is checked for changes
# While nobody is in view the motion gate looks at 10 frames a second, not at every frame the
# camera decodes: a person walking up is seen within 0.1 s, and the idle CPU budget (5 % of a
# core, with decoding alone at ~3 %) holds. The camera keeps only the newest frame, so the
# skipped ones cost nothing.
IDLE_GATE_INTERVAL_S = 0.1
VISIT_GAP_S = 1.5  # no face for this long ends a visit
PROMPT_AFTER_S = 2.0  # an unmatched face this long in view gets "请刷卡"
# Frames of a face whose nearest elder is the one under a liveness check, this far past the
# threshold, still feed the check (their landmarks are as good; the identity was decided).
# Frames this far from an elder are also plausibly his face for a fused decision.
LIVENESS_SLACK = 0.15
# While a parallax check is pending, frames get only detection + 5 points (~28 ms at full
# scale) except one full analysis (with the encoding, 46 ms on the BLAS build) per this many
# seconds, which keeps the identity and the frame agreement current.
FULL_ANALYSIS_EVERY_S = 0.3
RECENT_FRAMES = 12  # face frames of the visit kept for the liveness check (> its window)


def _same_place(box: FaceBox, near: FaceBox) -> bool:
    """The face has not jumped: centres within half a face width of each other."""
    dx = (box.left + box.right - near.left - near.right) / 2
    dy = (box.top + box.bottom - near.top - near.bottom) / 2
    return math.hypot(dx, dy) <= 0.5 * max(near.width, 1)


def _finite(value: float) -> float | None:
    """For the record: a margin is inf when only one elder is enrolled."""
    return round(value, 4) if math.isfinite(value) else None


@dataclass(frozen=True)
class FaceStatus:
    """What /api/health shows of the worker (field order is the JSON's)."""

    state: str  # starting | ok | idle (nobody enrolled) | error | stopped
    detail: str
    templates: int
    elders: int
    liveness: str
    card_evidence: str
    heartbeat_age_s: float
    frames_seen: int
    frames_analyzed: int
    checkins: int
    decision_ms_p50: float | None
    decision_ms_p99: float | None
    detect_ms_p50: float | None
    encode_ms_p50: float | None


@dataclass
class _Visit:
    started: float
    last_face: float
    matched: bool = False
    prompted: bool = False


class FaceWorker:
    def __init__(
        self,
        face: FaceConfig,
        camera: Camera,
        checkin: CheckinService,
        templates: TemplateStore | None,
        key_problem: str | None = None,
        pipeline: FacePipeline | None = None,
    ) -> None:
        self.face = face
        self.camera = camera
        self.checkin = checkin
        self.templates = templates
        self.liveness_mode = LivenessMode(face.liveness)
        # face.detector: the same detector for every frame, liveness frame and card-evidence
        # frame, and the only one whose templates are matched (reload).
        self.detector = make_detector(
            face.detector,
            face.yunet_scale if face.detector == "yunet" else face.detect_scale,
            coarse_scale=face.coarse_scale,
        )
        self.pipeline = pipeline or FacePipeline(
            detector=self.detector,
            min_face_px=face.min_face_px,
            # Only blink modes need the 68-point model; parallax uses the encoder's 5 points.
            landmarks=self.liveness_mode in (LivenessMode.BLINK, LivenessMode.BLINK_TURN),
        )
        self.matcher = FaceMatcher(face.threshold, face.min_margin)
        self.gate = MotionGate()
        self.guard = PresenceGuard(face.rearm_after_s)
        # dlib is shared with the card-evidence check (reader threads): one caller at a time.
        self.lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.state = "starting" if key_problem is None else "error"
        self.detail = key_problem or ""
        self.thread: threading.Thread | None = None
        self._fingerprint: tuple[int, int] | None = None
        self._visit: _Visit | None = None
        self._live: LivenessCheck | None = None
        self._live_box: FaceBox | None = None  # where the face under the check was last matched
        self._last_full = 0.0  # monotonic time of the last full analysis
        self._live_match: Match | None = None
        self._live_encoding: np.ndarray | None = None  # the encoding of _live_match's frame
        # (time, nearest elder, distance, liveness input) of the visit's recent face frames.
        self._recent: deque[tuple[float, Hashable | None, float, Any]] = deque(maxlen=RECENT_FRAMES)
        # The elder each of the visit's last frames with a face matched (None: no Match).
        self._agree: deque[Hashable | None] = deque(maxlen=face.agree_window)
        # The same frames as (nearest elder, distance, encoding) for fusion, and the elder the
        # newest fused decision matched (None: no fused Match on the last analysed frame).
        self._window: deque[FaceFrame] = deque(maxlen=face.agree_window)
        self._fused: Hashable | None = None
        self._decision_ms: deque[float] = deque(maxlen=200)
        self._detect_ms: deque[float] = deque(maxlen=200)
        self._encode_ms: deque[float] = deque(maxlen=200)
        self.frames_seen = 0
        self.frames_analyzed = 0
        self.gate_open = False  # motion seen on the last frame (else the worker idles)
        # (camera timestamp, encoding) of the newest face analysed, for card evidence.
        self.last_encoding: tuple[float, np.ndarray] | None = None
        self.checkins = 0

    # -- thread ------------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        self.thread = threading.Thread(target=self.run, args=(stop,), name="face", daemon=True)
        self.thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self, stop: threading.Event) -> None:
        self.reload()
        next_poll = time.monotonic() + RELOAD_POLL_S
        seq = 0
        while not stop.is_set():
            now = time.monotonic()
            self.heartbeat = now
            if now >= next_poll:
                next_poll = now + RELOAD_POLL_S
                self.reload_if_changed()
            got = self.camera.wait_newer(seq, WAIT_S)
            if got is None:
                self._no_face(time.monotonic())
                continue
            frame, seq, captured = got
            try:
                self.process(frame, captured)
            except Exception:  # one bad frame must not end face check-in for the day
                log.exception("face worker: frame %d failed", seq)
            if not self.gate_open:
                stop.wait(max(0.0, IDLE_GATE_INTERVAL_S - (time.monotonic() - now)))
        self.state = "stopped"

    def problem(self, stall_s: float) -> str | None:
        """For the daemon's self-check: a dead or hung worker (an idle one is fine)."""
        if self.thread is None:
            return None
        if not self.thread.is_alive():
            return "face worker thread stopped"
        age = time.monotonic() - self.heartbeat
        if age > stall_s:
            return f"face worker hung (no heartbeat for {age:.0f} s)"
        return None

    # -- templates ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Load every template into the matcher (at start, after enrolment or withdrawal)."""
        if self.templates is None:
            return
        try:
            fingerprint = self.templates.fingerprint()
            stored = self.templates.all()
        except FaceKeyError as exc:
            self.state, self.detail = "error", str(exc)
            log.error("face check-in disabled: %s", exc)
            return
        # Templates of another detector are never matched: their encodings sit a third of the
        # threshold away from this detector's (docs/face.md); those elders must re-enrol.
        counts: dict[str, tuple[int, int]] = {}
        for name in {t.detector for t in stored}:
            mine = [t for t in stored if t.detector == name]
            counts[name] = (len(mine), len({t.elder_id for t in mine}))
        mismatch = detector_mismatch(counts, self.detector.name)
        usable = [t for t in stored if t.detector == self.detector.name]
        if usable:
            encodings = np.stack([t.encoding for t in usable])
            self.matcher.set_templates([t.elder_id for t in usable], encodings)
        else:
            self.matcher.set_roster([])
        self._fingerprint = fingerprint
        if mismatch is not None:
            log.error("face templates: %s", mismatch)
        if usable:
            self.state, self.detail = "ok", mismatch or ""
        elif mismatch is not None:
            self.state, self.detail = "error", mismatch
        else:
            self.state, self.detail = "idle", "no face enrolled"
        log.info("face templates loaded: %d of %d elders", len(usable), self.matcher.elder_count)

    def reload_if_changed(self) -> None:
        if self.templates is None:
            return
        try:
            if self.templates.fingerprint() != self._fingerprint:
                self.reload()
        except Exception:
            log.exception("face worker: could not check the templates")

    # -- one frame ---------------------------------------------------------------------------
    def analyze(self, frame: Frame) -> FaceAnalysis:
        with self.lock:
            return self.pipeline.analyze_bgr(frame)

    def process(self, frame: Frame, captured: float) -> CheckinResult | None:
        """One frame through the gate, pipeline, matcher, liveness and guard."""
        self.frames_seen += 1
        now = time.monotonic()
        self.gate_open = self.matcher.template_count > 0 and self.gate.update(frame, now)
        if not self.gate_open:
            self._no_face(now)
            return None
        live = self._live
        if (
            self.liveness_mode is LivenessMode.PARALLAX
            and live is not None
            and live.state is LivenessState.PENDING
            and self._live_box is not None
            and now - self._last_full < FULL_ANALYSIS_EVERY_S
        ):
            return self._liveness_frame(frame, self._live_box)
        analysis = self.analyze(frame)
        self._last_full = time.monotonic()  # from its end: a slow machine still gets points
        self.frames_analyzed += 1
        self._detect_ms.append(analysis.timings.detect_ms)
        if analysis.encoding is None:
            # Not a vote: the window holds the visit's last frames *with* a face. In a dim
            # room HOG finds a small face in some frames only; counting the misses would
            # refuse an elder whose faces, when found, agree (docs/face.md "Fused
            # decisions"). The visit gap still clears the window when he leaves.
            self._no_face(time.monotonic())
            self._decision_ms.append((time.monotonic() - captured) * 1000)
            return None
        self._encode_ms.append(analysis.timings.encode_ms)
        # Kept for card evidence: a tap while this face is in view needs no second encoding.
        self.last_encoding = (captured, analysis.encoding)
        decision = self.matcher.match(analysis.encoding)
        self._agree.append(decision.elder_id if isinstance(decision, Match) else None)
        self._window.append((decision.elder_id, decision.distance, analysis.encoding))
        fused = (
            fused_decision(
                self.matcher,
                self._window,
                self.face.agree_frames,
                within=self.face.threshold + LIVENESS_SLACK,
            )
            if self.face.fuse_frames
            else None
        )
        # Fusion only adds matches: a frame that matches alone keeps its own decision.
        self._fused = fused.elder_id if isinstance(fused, Match) else None
        if isinstance(fused, Match) and not isinstance(decision, Match):
            decision = fused
        now = time.monotonic()
        visit = self._visit
        if visit is None or now - visit.last_face > VISIT_GAP_S:
            visit = self._visit = _Visit(started=now, last_face=now)
            self._recent.clear()
        visit.last_face = now
        self._recent.append((now, decision.elder_id, decision.distance, self._live_input(analysis)))
        if isinstance(decision, Match):
            visit.matched = True
            result = self._on_match(decision, analysis, now)
        else:
            result = self._on_unmatched(decision, analysis, now, visit)
        self._decision_ms.append((time.monotonic() - captured) * 1000)
        return result

    def _liveness_frame(self, frame: Frame, near: FaceBox) -> CheckinResult | None:
        """Detection and 5 points only, fed to the pending parallax check when the face is
        the one that was matched (its box overlaps the last matched box)."""
        import cv2

        with self.lock:
            rgb = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            floor = self.detector.min_size(self.face.min_face_px)
            box = choose_face(self.detector.detect(rgb), floor)
            points = face_points_5(rgb, box) if box is not None and _same_place(box, near) else None
        now = time.monotonic()
        if points is None:
            return None  # not proof of anything: the next full analysis decides
        return self._feed_liveness({"five": points}, now)

    def _no_face(self, now: float) -> None:
        if self._live is not None:
            self._feed_liveness(None, now)
        if self._visit is not None and now - self._visit.last_face > VISIT_GAP_S:
            self._visit = None
            self._recent.clear()
            self._agree.clear()
            self._window.clear()
            self._fused = None
            if self._live is not None and self._live.state is LivenessState.PASSED:
                # Live, but the frames never agreed: gone now. (A pending check stays: its
                # timeout still says 请刷卡 to a photo that was taken away.)
                self._live = self._live_match = None
                self._live_box = None

    def _agreed(self, elder_id: Hashable) -> bool:
        """At least `agree_frames` of the last `agree_window` analysed frames matched him,
        or the newest fused decision did (which needs as many frames nearest him)."""
        if self._fused is not None and self._fused == elder_id:
            return True
        return sum(1 for e in self._agree if e == elder_id) >= self.face.agree_frames

    def _live_input(self, analysis: FaceAnalysis) -> Any:
        """What the liveness check reads from one frame (None: nothing usable)."""
        if self.liveness_mode is LivenessMode.PARALLAX:
            return None if analysis.points5 is None else {"five": analysis.points5}
        return analysis.landmarks

    def _on_match(self, match: Match, analysis: FaceAnalysis, now: float) -> CheckinResult | None:
        elder = str(match.elder_id)
        if self.liveness_mode is LivenessMode.OFF:
            if self._agreed(match.elder_id) and self.guard.observe(elder, now):
                return self._check_in(match, "off")
            return None
        if self.guard.in_view(elder, now):
            self.guard.observe(elder, now)  # still standing there: keep the guard armed
            return None
        if self._live is None or self._live_match is None or self._live_match.elder_id != elder:
            self._live = LivenessCheck(self.liveness_mode, self.face.liveness_timeout_s)
            self._live_match, self._live_encoding = match, analysis.encoding
            self._prefill_liveness(self._live, match, now)
        elif match.distance < self._live_match.distance:
            self._live_match, self._live_encoding = match, analysis.encoding
        self._live_box = analysis.chosen
        return self._feed_liveness(self._live_input(analysis), now)

    def _prefill_liveness(self, live: LivenessCheck, match: Match, now: float) -> None:
        """Feed the visit's earlier frames of this face (all but the current one, which the
        caller feeds): same nearest elder, within the slack of the threshold. The timeout
        runs from the first match, not from these frames (on a slow machine they reach back
        seconds, and the check would time out before its first own frame)."""
        earlier = [
            (t, marks)
            for t, elder, distance, marks in list(self._recent)[:-1]
            if elder == match.elder_id and distance <= self.face.threshold + LIVENESS_SLACK
        ]
        live.start(now)
        for t, marks in earlier:
            live.update(marks, t)

    def _on_unmatched(
        self, decision: Ambiguous | Unknown, analysis: FaceAnalysis, now: float, visit: _Visit
    ) -> CheckinResult | None:
        live = self._live_match
        if (
            live is not None
            and decision.elder_id == live.elder_id
            and decision.distance <= self.face.threshold + LIVENESS_SLACK
        ):
            self._live_box = analysis.chosen
            return self._feed_liveness(self._live_input(analysis), now)
        if self._live is not None:
            self._feed_liveness(None, now)
        if visit.matched or visit.prompted or now - visit.started < PROMPT_AFTER_S:
            return None
        visit.prompted = True
        refusal = (
            Refusal.FACE_AMBIGUOUS if isinstance(decision, Ambiguous) else Refusal.FACE_UNKNOWN
        )
        if isinstance(decision, Ambiguous):
            log.info(
                "ambiguous face: %s %.3f vs %s (margin %.3f)",
                decision.elder_id, decision.distance, decision.runner_up, decision.margin,
            )  # fmt: skip
        return self.checkin.refuse_face(
            refusal, _finite(decision.distance), _finite(decision.margin)
        )

    def _feed_liveness(self, landmarks: Any, now: float) -> CheckinResult | None:
        live, match = self._live, self._live_match
        assert live is not None
        state = live.update(landmarks, now)
        if state is LivenessState.PENDING or match is None:
            return None
        if state is LivenessState.PASSED and not self._agreed(match.elder_id):
            return None  # live, but the frames do not agree yet: keep the passed check
        encoding, self._live_encoding = self._live_encoding, None
        self._live = self._live_match = None
        self._live_box = None
        elder = str(match.elder_id)
        self.guard.observe(elder, now)  # pass or fail: once per appearance
        if state is LivenessState.PASSED:
            result = self._check_in(match, live.outcome)
            if result.accepted and encoding is not None:
                self._learn(match, encoding)
            return result
        log.warning("liveness failed for %s: %s", elder, live.detail)
        return self.checkin.refuse_face(
            Refusal.LIVENESS_FAILED, _finite(match.distance), _finite(match.margin)
        )

    def _check_in(self, match: Match, liveness: str) -> CheckinResult:
        result = self.checkin.check_in(
            CheckinRequest(
                Method.FACE,
                elder_id=str(match.elder_id),
                distance=_finite(match.distance),
                margin=_finite(match.margin),
                liveness=liveness,
            )
        )
        self.checkins += result.accepted
        log.info(
            "face %s (distance %.3f, margin %.3f, liveness %s): %s",
            match.elder_id, match.distance, match.margin, liveness, result.outcome,
        )  # fmt: skip
        return result

    def _learn(self, match: Match, encoding: np.ndarray) -> None:
        """Templates that follow ageing: only here, after a live-checked check-in of this
        face's own best frame (never a card-evidence frame, never with liveness off); the
        store decides whether the frame is confident and new enough (kiosk.face.templates)."""
        if self.templates is None or not self.face.learn_templates:
            return
        # The frame must be confident on its own: a fused match vouches for the mean of
        # several frames, not for this one.
        alone = self.matcher.match(encoding)
        if not isinstance(alone, Match) or alone.elder_id != match.elder_id:
            return
        match = alone
        try:
            adapted = self.templates.adapt(
                str(match.elder_id),
                encoding,
                distance=match.distance,
                margin=match.margin,
                at=self.checkin.now(),
                detector=self.detector.name,
            )
        except Exception:  # learning is optional; the check-in is already recorded
            log.exception("face worker: could not learn a template")
            return
        if adapted is not None:
            self.reload()

    # -- health ------------------------------------------------------------------------------
    def status(self) -> FaceStatus:
        def p(values: deque[float], q: float) -> float | None:
            data = sorted(values)
            if not data:
                return None
            return round(data[min(len(data) - 1, int(q * len(data)))], 1)

        return FaceStatus(
            state=self.state,
            detail=self.detail,
            templates=self.matcher.template_count,
            elders=self.matcher.elder_count,
            liveness=str(self.liveness_mode),
            card_evidence=self.face.card_evidence,
            heartbeat_age_s=round(time.monotonic() - self.heartbeat, 1),
            frames_seen=self.frames_seen,
            frames_analyzed=self.frames_analyzed,
            checkins=self.checkins,
            decision_ms_p50=p(self._decision_ms, 0.5),
            decision_ms_p99=p(self._decision_ms, 0.99),
            detect_ms_p50=round(statistics.median(self._detect_ms), 1) if self._detect_ms else None,
            encode_ms_p50=round(statistics.median(self._encode_ms), 1) if self._encode_ms else None,
        )
