"""Frame fusion: decide on the mean encoding of a visit's last frames of one face.

Consecutive camera frames of one elder differ by sensor noise, JPEG blocks and a little head
motion. Each of these moves a frame's encoding a few hundredths in its own direction, so on a
dim, cheap camera single frames of an enrolled elder fall just outside the threshold one
after another while their mean is well inside it. A different person's distance is
systematic (another face, not noise), and averaging his frames leaves it about where it was.
Measured on the degraded set (`python -m bench.face_tools.fusion_frr`, docs/face.md): at the
default threshold the visits refused fall from 11 to 6 of 48 with no false accept among 78
impostor visits and the crowd.

Agreement over frames is kept, not replaced: only frames whose *nearest* elder is the newest
frame's nearest elder are averaged, and at least `need` of them must be in the window (the
worker's `agree_frames` of `agree_window`). A single frame of a look-alike among frames of
somebody else therefore still checks nobody in, exactly as with the 2-of-3 vote.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from kiosk.face.matcher import Ambiguous, FaceMatcher, Match, Unknown

# One analysed frame of the window: (its nearest elder, its encoding); None: no face found.
FaceFrame = tuple[Hashable | None, NDArray[np.float32]] | None


def fused_decision(
    matcher: FaceMatcher, window: Sequence[FaceFrame], need: int
) -> Match | Ambiguous | Unknown | None:
    """The matcher's decision on the mean encoding of the window's frames of the newest face.

    None when there is nothing to fuse: the newest frame has no face or no nearest elder,
    fewer than `need` frames share its nearest elder, or their mean falls nearest to somebody
    else (frames that disagree after all: no identity is claimed from them).
    """
    if not window or window[-1] is None or window[-1][0] is None:
        return None
    elder = window[-1][0]
    same = [frame[1] for frame in window if frame is not None and frame[0] == elder]
    if len(same) < max(need, 2):
        return None
    decision = matcher.match(np.mean(np.asarray(same, dtype=np.float32), axis=0))
    return decision if decision.elder_id == elder else None
