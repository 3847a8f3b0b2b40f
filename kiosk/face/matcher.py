"""1:N matching of one face encoding against the in-memory roster of templates.

The decision needs two things: the best distance must be within `threshold`, and the best
distance of a *different* elder must be at least `min_margin` further away. The margin rule is
what turns "two elders look alike to dlib" into "请刷卡" instead of a subsidy paid to the wrong
person.

Speed: the distances are computed as squared Euclidean distances from precomputed template
norms and one float32 matrix-vector product (|t|^2 - 2 t.q + |q|^2), written into a buffer
allocated once per roster. Templates are stored grouped by elder, so the runner-up of a
different elder is the minimum outside one contiguous slice, without building a mask.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

ENCODING_DIM = 128

# Defaults measured on ../shared/faces with `python -m bench.face_tools.calibrate` (docs/face.md).
DEFAULT_THRESHOLD = 0.45
DEFAULT_MIN_MARGIN = 0.08

ElderId = Hashable


@dataclass(frozen=True)
class Match:
    """The face belongs to `elder_id`: within threshold and clear of every other elder."""

    elder_id: ElderId
    distance: float
    margin: float  # distance of the best *other* elder minus `distance`; inf with one elder


@dataclass(frozen=True)
class Ambiguous:
    """Within threshold, but another elder is too close: ask for the card, do not guess."""

    elder_id: ElderId
    distance: float
    margin: float
    runner_up: ElderId


@dataclass(frozen=True)
class Unknown:
    """Nobody within threshold (or an empty roster: then `elder_id` is None)."""

    elder_id: ElderId | None  # the nearest elder, for diagnostics only
    distance: float  # inf with an empty roster
    margin: float


@dataclass(frozen=True)
class NoFace:
    """No usable face in the frame; produced by the pipeline, never by `match`."""

    reason: str = "no face"


MatchResult = Match | Ambiguous | Unknown | NoFace


@dataclass(frozen=True)
class Nearest:
    """The raw 1:N answer before any decision."""

    elder_id: ElderId | None
    distance: float
    runner_up: ElderId | None
    runner_up_distance: float

    @property
    def margin(self) -> float:
        return self.runner_up_distance - self.distance


class _Roster:
    """An immutable snapshot of the templates, swapped as a whole on roster updates."""

    def __init__(self, elder_ids: Sequence[ElderId], encodings: NDArray[np.float32]) -> None:
        # Stable sort by elder so each elder's templates are one contiguous slice.
        order = sorted(range(len(elder_ids)), key=lambda i: (str(type(elder_ids[i])), elder_ids[i]))
        self.templates = np.ascontiguousarray(encodings[order], dtype=np.float32)
        self.norms = np.einsum("ij,ij->i", self.templates, self.templates).astype(np.float32)
        self.owner = [elder_ids[i] for i in order]
        self.slices: dict[ElderId, tuple[int, int]] = {}
        for pos, elder in enumerate(self.owner):
            start, _ = self.slices.get(elder, (pos, pos))
            self.slices[elder] = (start, pos + 1)
        self.buffer = np.empty(len(order), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.owner)


class FaceMatcher:
    """Thread-safe 1:N matcher over float32 templates; several templates per elder allowed."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        min_margin: float = DEFAULT_MIN_MARGIN,
    ) -> None:
        if not 0 < threshold < 2:
            raise ValueError(f"threshold must be in (0, 2), got {threshold}")
        if min_margin < 0:
            raise ValueError(f"min_margin must be >= 0, got {min_margin}")
        self.threshold = threshold
        self.min_margin = min_margin
        self._lock = threading.Lock()  # guards the shared output buffer of the current roster
        self._roster = _Roster([], np.empty((0, ENCODING_DIM), dtype=np.float32))

    # -- roster -------------------------------------------------------------------------------
    def set_templates(self, elder_ids: Sequence[ElderId], encodings: ArrayLike) -> None:
        """Replace the whole roster atomically (one row of `encodings` per entry of `elder_ids`)."""
        array = np.asarray(encodings, dtype=np.float32).reshape(-1, ENCODING_DIM)
        if len(array) != len(elder_ids):
            raise ValueError(f"{len(elder_ids)} elder ids for {len(array)} encodings")
        if not np.all(np.isfinite(array)):
            raise ValueError("encodings contain NaN or inf")
        roster = _Roster(list(elder_ids), array)
        with self._lock:
            self._roster = roster

    def set_roster(self, templates: Iterable[tuple[ElderId, ArrayLike]]) -> None:
        """Convenience form of `set_templates` from (elder_id, encoding) pairs."""
        pairs = list(templates)
        self.set_templates(
            [elder for elder, _ in pairs],
            np.array([np.asarray(enc, dtype=np.float32) for _, enc in pairs], dtype=np.float32)
            if pairs
            else np.empty((0, ENCODING_DIM), dtype=np.float32),
        )

    @property
    def template_count(self) -> int:
        return len(self._roster)

    @property
    def elder_count(self) -> int:
        return len(self._roster.slices)

    # -- matching -----------------------------------------------------------------------------
    def nearest(self, encoding: ArrayLike) -> Nearest:
        """The best elder and the best *other* elder, with Euclidean distances."""
        query = np.asarray(encoding, dtype=np.float32).reshape(ENCODING_DIM)
        with self._lock:
            roster = self._roster
            if len(roster) == 0:
                return Nearest(None, math.inf, None, math.inf)
            dist2 = roster.buffer
            np.dot(roster.templates, query, out=dist2)
            dist2 *= -2.0
            dist2 += roster.norms  # |t|^2 - 2 t.q ; |q|^2 is added only to the winners
            best = int(np.argmin(dist2))
            best_elder = roster.owner[best]
            start, stop = roster.slices[best_elder]
            second = math.inf
            second_pos = -1
            if start > 0:
                pos = int(np.argmin(dist2[:start]))
                second, second_pos = float(dist2[pos]), pos
            if stop < len(roster):
                pos = stop + int(np.argmin(dist2[stop:]))
                if float(dist2[pos]) < second:
                    second, second_pos = float(dist2[pos]), pos
            q2 = float(np.dot(query, query))
            best_d = math.sqrt(max(float(dist2[best]) + q2, 0.0))
            if second_pos < 0:
                return Nearest(best_elder, best_d, None, math.inf)
            second_d = math.sqrt(max(second + q2, 0.0))
            return Nearest(best_elder, best_d, roster.owner[second_pos], second_d)

    def match(self, encoding: ArrayLike) -> Match | Ambiguous | Unknown:
        """Decide: Match, Ambiguous (too close to another elder) or Unknown."""
        return self.decide(self.nearest(encoding))

    def decide(self, nearest: Nearest) -> Match | Ambiguous | Unknown:
        if nearest.elder_id is None:
            return Unknown(None, math.inf, math.inf)
        margin = nearest.margin
        if nearest.distance > self.threshold:
            return Unknown(nearest.elder_id, nearest.distance, margin)
        if margin < self.min_margin:
            assert nearest.runner_up is not None  # margin is inf without a runner-up
            return Ambiguous(nearest.elder_id, nearest.distance, margin, nearest.runner_up)
        return Match(nearest.elder_id, nearest.distance, margin)
