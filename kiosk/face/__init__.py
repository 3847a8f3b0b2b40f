"""Face check-in building blocks: motion gate, detection, encoding, 1:N matching, liveness.

The pipeline parts (motion, detect, encode, matcher, liveness, guard) import nothing else of
the kiosk; worker, enrol, templates and card_evidence wire them to the check-in service.
dlib (through kiosk.face.weights) is imported lazily by detect/encode, so matcher, motion,
liveness and guard import without it.
The measured defaults and their reasons are in docs/face.md.
"""

from kiosk.face.guard import PresenceGuard
from kiosk.face.liveness import LivenessCheck, LivenessMode, LivenessState
from kiosk.face.matcher import (
    DEFAULT_MIN_MARGIN,
    DEFAULT_THRESHOLD,
    Ambiguous,
    FaceMatcher,
    Match,
    MatchResult,
    NoFace,
    Unknown,
)
from kiosk.face.motion import MotionGate

__all__ = [
    "DEFAULT_MIN_MARGIN",
    "DEFAULT_THRESHOLD",
    "Ambiguous",
    "FaceMatcher",
    "LivenessCheck",
    "LivenessMode",
    "LivenessState",
    "Match",
    "MatchResult",
    "MotionGate",
    "NoFace",
    "PresenceGuard",
    "Unknown",
]
