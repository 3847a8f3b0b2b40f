"""Fused decisions vs the 2-of-3 vote on the degraded set: visits refused and impostor visits.

    python -m bench.face_tools.fusion_frr [--faces DIR] [--visit-frames 10] [--seed 15]
                                          [--kiosk-scale hog|yunet [--detect-scale S]
                                           [--coarse-scale S|none]]

The degraded set, enrolment protocol and visits are those of `bench.face_tools.degraded_frr`
(same seeds, so the 2-of-3 rows reproduce its table), with one addition: *every* degraded
photo gets a visit, not only the genuine probes, so each visit is also an impostor visit
against the roster without its own person. With `--kiosk-scale DETECTOR` the probes and
visit frames are found as the kiosk finds them (the photo on a 640x480 frame, the kiosk's
detector settings and face-size floor: `degraded_frr.kiosk_encoding`), enrolment as
enrolment does with that detector; a frame with no usable face counts against.

A visit is decided frame by frame as the worker does with liveness off (kiosk/face/worker.py):
each frame's single decision, the window of the last `agree_window` frames, and a check-in
when `agree_frames` of them matched the same elder alone ("2 of 3") or, with fusion, when
`kiosk.face.fusion.fused_decision` on that window matched ("2 of 3 or fused").

Reported per template set and threshold: genuine visits refused (or taken for someone
else), impostor visits that checked anyone in, and the nearest impostor distance of a fused
window beside that of a single frame.
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from collections.abc import Hashable

import numpy as np

from bench.face_tools.dataset import load_rgb, load_samples, require_face_data
from bench.face_tools.degraded import build, visit_frames
from bench.face_tools.degraded_frr import (
    TEMPLATES,
    Encoding,
    Shot,
    _matcher,
    enrol,
    kiosk_encoding,
    shoot,
)
from kiosk.face.detect import detect_faces, make_detector
from kiosk.face.encode import encode_face
from kiosk.face.enrol import fit_photo
from kiosk.face.fusion import FaceFrame, fused_decision
from kiosk.face.matcher import FaceMatcher, Match
from kiosk.face.worker import LIVENESS_SLACK

log = logging.getLogger(__name__)

THRESHOLDS = [0.45, 0.46, 0.47, 0.48, 0.50]
TEMPLATE_SETS = {
    "enrolment encoding only (shipped default)": "enrolment encoding only (before)",
    "+ augmented views (face.augment_templates)": "+ 4 degraded views + 10 jitters",
}
AGREE_FRAMES, AGREE_WINDOW = 2, 3  # the shipped face.agree_frames / agree_window


def decide_visit(matcher: FaceMatcher, visit: list[Encoding | None], fuse: bool) -> Hashable | None:
    """The elder the worker would check in during this visit (liveness off), or None."""
    agree: deque[Hashable | None] = deque(maxlen=AGREE_WINDOW)
    window: deque[FaceFrame] = deque(maxlen=AGREE_WINDOW)
    within = matcher.threshold + LIVENESS_SLACK
    for encoding in visit:
        if encoding is None:
            continue  # no face found: no vote (the worker's window holds face frames only)
        single = matcher.match(encoding)
        agree.append(single.elder_id if isinstance(single, Match) else None)
        window.append((single.elder_id, single.distance, encoding))
        fused = fused_decision(matcher, window, AGREE_FRAMES, within) if fuse else None
        if isinstance(fused, Match):
            return fused.elder_id
        if isinstance(single, Match) and agree.count(single.elder_id) >= AGREE_FRAMES:
            return single.elder_id
    return None


def _without(templates: dict[str, list[Encoding]], person: str) -> dict[str, list[Encoding]]:
    """The roster an impostor visit is played against: everybody but its own person."""
    return {p: encs for p, encs in templates.items() if p != person}


def _nearest_fused(templates: dict[str, list[Encoding]], shots: list[Shot]) -> tuple[float, float]:
    """The nearest impostor distance of any single frame and of any fused window (the mean
    of a visit's 2-3 consecutive frames) over every visit."""
    single = fused = float("inf")
    for s in shots:
        for person, encs in templates.items():
            if person == s.item.person:
                continue
            t = np.asarray(encs)
            frames = [e for e in s.visit if e is not None]
            for e in frames:
                single = min(single, float(np.min(np.linalg.norm(t - e, axis=1))))
            for i in range(len(s.visit) - 1):
                part = [e for e in s.visit[i : i + AGREE_WINDOW] if e is not None]
                if len(part) >= AGREE_FRAMES:
                    mean = np.mean(part, axis=0)
                    fused = min(fused, float(np.min(np.linalg.norm(t - mean, axis=1))))
    return single, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=None)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--seed", type=int, default=15, help="15 is the calibration set")
    parser.add_argument("--visit-frames", type=int, default=10)
    parser.add_argument("--kiosk-scale", choices=["hog", "yunet"], default=None)
    parser.add_argument(
        "--detect-scale", type=float, default=None, help="the kiosk detector's scale"
    )
    parser.add_argument(
        "--coarse-scale",
        type=lambda v: None if v == "none" else float(v),
        default=None,
        help="HOG's first look (none: always --detect-scale)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    faces = require_face_data(args.faces)
    items = build(faces, args.variants, args.seed)
    if args.kiosk_scale:
        enrol_detector, kiosk = (
            make_detector(args.kiosk_scale, enrol=True),
            make_detector(args.kiosk_scale, args.detect_scale, coarse_scale=args.coarse_scale),
        )
        shots = [shoot(item, enrol_detector) for item in items]
    else:
        shots = [shoot(item) for item in items]
    for n, s in enumerate(shots):  # the seeds of degraded_frr.add_visits, for every photo
        more = visit_frames(faces, s.item, args.visit_frames - 1, seed=1000 + n)
        if args.kiosk_scale:
            s.visit = [kiosk_encoding(kiosk, f) for f in [s.item.image, *more]]
            continue
        s.visit = [s.encoding]
        for frame in more:
            image = fit_photo(frame)
            boxes = detect_faces(image, scale=1.0, upsample=1)
            s.visit.append(encode_face(image, boxes[0]) if boxes else None)
    if args.kiosk_scale:  # the crowd's faces as the detector under test finds them
        crowd = [*sorted((faces / "crowd").glob("*.jp*g")), faces / "lin-manuel-miranda.png"]
        strangers = [
            encode_face(image, box)
            for image in (fit_photo(load_rgb(path)) for path in crowd)
            for box in enrol_detector.detect(image)
        ]
    else:
        strangers = [s.encoding for s in load_samples(faces) if s.role == "stranger"]
    log.info("%d photos, %d visit frames each", len(shots), args.visit_frames)

    head = " | ".join(f"{t:.2f}" for t in THRESHOLDS)
    rows = [f"| templates | rule | {head} |", "|---|---|" + "---|" * len(THRESHOLDS)]
    nearest = []
    for label, name in TEMPLATE_SETS.items():
        make = next(m for n, m in TEMPLATES.items() if n.startswith(name))
        templates, sources = enrol(shots, make)
        genuine = [
            s for s in shots if s.item.person in sources and sources[s.item.person] != s.item.source
        ]
        for fuse in (False, True):
            cells = []
            for threshold in THRESHOLDS:
                m = _matcher(templates, threshold)
                refused = sum(decide_visit(m, s.visit, fuse) != s.item.person for s in genuine)
                impostor = sum(
                    decide_visit(
                        _matcher(_without(templates, s.item.person), threshold), s.visit, fuse
                    )
                    is not None
                    for s in shots
                )
                photo_fa = sum(isinstance(m.match(e), Match) for e in strangers)
                cells.append(f"{refused} · {impostor} · {photo_fa}")
            rule = "2 of 3 or fused (shipped)" if fuse else "2 of 3 (before)"
            rows.append(f"| {label} | {rule} | " + " | ".join(cells) + " |")
        single, fused = _nearest_fused(templates, shots)
        nearest.append(f"{label}: nearest impostor, single frame {single:.3f}, fused {fused:.3f}")
    log.info(
        "cells: genuine visits refused / %d · impostor visits checked in / %d · stranger "
        "photos matched / %d\n\n%s\n\n%s",
        len(genuine), len(shots), len(strangers), "\n".join(rows), "\n".join(nearest),
    )  # fmt: skip


if __name__ == "__main__":
    main()
