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
frame's nearest elder, and which are plausibly his face at all (within `within` of him: with
a roster of a few elders a stranger's nearest elder is somebody too), are averaged, and at
least `need` of them must be in the window (the worker's `agree_frames` of `agree_window`).
A single frame of a look-alike among frames of somebody else therefore still checks nobody
in, exactly as with the 2-of-3 vote.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import NDArray

from kiosk.face.matcher import Ambiguous, FaceMatcher, Match, Unknown

# One analysed frame of the window: (its nearest elder, the distance to him, its encoding);
# None: no face found.
FaceFrame = tuple[Hashable | None, float, NDArray[np.float32]] | None


def fused_decision(
    matcher: FaceMatcher, window: Sequence[FaceFrame], need: int, within: float
) -> Match | Ambiguous | Unknown | None:
    """The matcher's decision on the mean encoding of the window's frames of the newest face.

    None when there is nothing to fuse: the newest frame has no face, no nearest elder or is
    further than `within` from him, fewer than `need` frames are nearest him within `within`,
    or their mean falls nearest to somebody else (frames that disagree after all: no identity
    is claimed from them).
    """
    newest = window[-1] if window else None
    if newest is None or newest[0] is None or newest[1] > within:
        return None
    elder = newest[0]
    same = [f[2] for f in window if f is not None and f[0] == elder and f[1] <= within]
    if len(same) < max(need, 2):
        return None
    decision = matcher.match(np.mean(np.asarray(same, dtype=np.float32), axis=0))
    return decision if decision.elder_id == elder else None
