"""False rejects on the degraded set: score distributions, ROC, template augmentation, visits.

    python -m bench.face_tools.degraded_frr [--faces DIR] [--visit-frames 10] [--seed 15]

The degraded set and the enrolment protocol are those of `bench.face_tools.enrol_gates`
(bench/face_tools/degraded.py; each person enrols from the first two variants of one source
photo that pass the kiosk's gates, `judge_face`; probes are all variants of their other
photos, never gated; strangers are the crowd/ faces, Lin and the child of
obama_and_biden.jpg). Nothing is left out of the counts: a probe where no face is found is
a false reject.

Reported, for each way of making templates (`TEMPLATES`):
  * genuine distances (probe -> own elder's nearest template) and impostor distances
    (probe -> every other elder, stranger -> every elder), as percentiles;
  * per-frame FR / FA at thresholds 0.45-0.56 (margin 0.08) on the degraded set, and on the
    clean photos (templates from train/, every test face and train photo leave-one-out);
  * per visit: `--visit-frames` camera frames of each genuine probe (the same recipe, fresh
    noise, the head moved a little: degraded.visit_frames), decided by the worker's rule,
    2 of the last 3 frames, and by "any single frame";
  * with `--probe-variants`: per-frame FR / FA at 0.45 with the aligned face chip normalised
    (CLAHE, gamma, stretch) or the image upscaled before the landmarks, applied to templates
    and probes alike, or to the probes only (what was tried and not adopted, docs/face.md).

    python -m bench.face_tools.degraded_frr --detector hog,yunet

compares face detectors (`face.detector`) side by side instead, as the kiosk runs them:
enrolment with each detector at enrolment settings (kiosk.face.detect.make_detector(enrol=True),
the same gates), probes and visit frames placed on a 640x480 camera frame and found with the
kiosk's settings and the 64 px floor (FacePipeline defaults), strangers (crowd/ faces and Lin)
found and encoded with that detector; plain templates (augmentation is off by default).
Reported per detector: failure to enrol, probes and visit frames with no usable face, FR / FA
per frame, per visit (2 of 3, any frame) and over the visit frames, at each threshold.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.face_tools.dataset import FaceSample, load_rgb, load_samples, require_face_data
from bench.face_tools.degraded import Degraded, build, visit_frames
from kiosk.face.augment import augmented_encodings
from kiosk.face.detect import FaceBox, FaceDetector, Image, choose_face, detect_faces, make_detector
from kiosk.face.encode import encode_face, encode_face_with_points
from kiosk.face.enrol import fit_photo, judge_face, measure_face
from kiosk.face.matcher import DEFAULT_MIN_MARGIN, DEFAULT_THRESHOLD, FaceMatcher, Match
from kiosk.face.pipeline import DEFAULT_MIN_FACE_PX

log = logging.getLogger(__name__)

THRESHOLDS = [0.45, 0.46, 0.47, 0.48, 0.50, 0.52, 0.54, 0.56]
Encoding = NDArray[np.float32]


@dataclass
class Shot:
    """One degraded photo as enrolment (or a camera) sees it."""

    item: Degraded
    image: Image | None = None
    box: FaceBox | None = None
    encoding: Encoding | None = None
    gate_ok: bool = False
    visit: list[Encoding | None] = field(default_factory=list)
    probe: Encoding | None = None  # as a kiosk camera frame (--detector); else `encoding`


def shoot(item: Degraded, detector: FaceDetector | None = None) -> Shot:
    """The photo as enrolment sees it (HOG at enrolment settings unless `detector`)."""
    image = fit_photo(item.image)
    boxes = (
        detector.detect(image)
        if detector is not None
        else detect_faces(image, scale=1.0, upsample=1)
    )
    shot = Shot(item, image)
    if not boxes:
        return shot
    shot.box = boxes[0]
    shot.encoding, points = encode_face_with_points(image, boxes[0])
    shot.gate_ok = len(boxes) == 1 and judge_face(measure_face(image, boxes[0], points)) is None
    return shot


def _jittered(image: Image, box: FaceBox) -> Encoding:
    return encode_face(image, box, num_jitters=10)


# How templates are made from one enrolment image (image, box, its plain encoding).
TemplateMaker = Callable[[Image, FaceBox, Encoding], list[Encoding]]
TEMPLATES: dict[str, TemplateMaker] = {
    "enrolment encoding only (before)": lambda im, b, e: [e],
    "+ the same encoded with 10 jitters": lambda im, b, e: [e, _jittered(im, b)],
    "encoded with 10 jitters instead": lambda im, b, e: [_jittered(im, b)],
    "+ 4 degraded views (dark, flat, soft, far)": lambda im, b, e: [
        e,
        *(enc for name, enc, _ in augmented_encodings(im, b, encode_face) if name != "jittered"),
    ],
    "+ 4 degraded views + 10 jitters (kiosk.face.augment): shipped": lambda im, b, e: [
        e,
        *(enc for _, enc, _ in augmented_encodings(im, b, encode_face)),
    ],
}


def enrol(
    shots: list[Shot], make: TemplateMaker
) -> tuple[dict[str, list[Encoding]], dict[str, str]]:
    templates: dict[str, list[Encoding]] = {}
    sources: dict[str, str] = {}
    for person in dict.fromkeys(s.item.person for s in shots):
        mine = [s for s in shots if s.item.person == person]
        for source in dict.fromkeys(s.item.source for s in mine):
            passing = [s for s in mine if s.item.source == source and s.gate_ok]
            if len(passing) >= 2:
                templates[person] = [
                    t
                    for s in passing[:2]
                    if s.image is not None and s.box is not None and s.encoding is not None
                    for t in make(s.image, s.box, s.encoding)
                ]
                sources[person] = source
                break
    return templates, sources


def _matcher(templates: dict[str, list[Encoding]], threshold: float) -> FaceMatcher:
    matcher = FaceMatcher(threshold, DEFAULT_MIN_MARGIN)
    matcher.set_roster((p, e) for p, encs in templates.items() for e in encs)
    return matcher


def _accepts(matcher: FaceMatcher, encoding: Encoding | None, person: str) -> bool:
    if encoding is None:
        return False
    decision = matcher.match(encoding)
    return isinstance(decision, Match) and decision.elder_id == person


@dataclass
class Scores:
    genuine: list[float]  # probe -> own elder (inf: no face found)
    impostor: list[float]  # probe -> each other elder; stranger -> each elder
    rates: dict[float, tuple[int, int, int, int]]  # threshold -> FR, genuine, FA, trials
    visits: dict[float, tuple[int, int, int, int]]  # -> any-frame FR, 2-of-3 FR, visits, FA frames
    frames: dict[float, tuple[int, int]]  # threshold -> visit frames rejected, visit frames


def _nearest(templates: list[Encoding], encoding: Encoding) -> float:
    return float(np.min(np.linalg.norm(np.asarray(templates) - encoding, axis=1)))


def score(
    shots: list[Shot],
    strangers: list[Encoding],
    make: TemplateMaker,
    with_visits: bool,
    kiosk_probes: bool = False,
) -> Scores:
    """With `kiosk_probes`, probes are `Shot.probe` (the kiosk's view) instead of the
    encoding enrolment made of the same photo."""
    templates, sources = enrol(shots, make)
    probes = [s for s in shots if sources.get(s.item.person) != s.item.source]
    if kiosk_probes:
        probes = [Shot(s.item, s.image, s.box, s.probe, s.gate_ok, s.visit) for s in probes]
    genuine, impostor = [], []
    for s in probes:
        if s.item.person not in templates:
            continue
        genuine.append(
            math.inf if s.encoding is None else _nearest(templates[s.item.person], s.encoding)
        )
        if s.encoding is not None:
            impostor += [
                _nearest(t, s.encoding) for p, t in templates.items() if p != s.item.person
            ]
    for enc in strangers:
        impostor += [_nearest(t, enc) for t in templates.values()]
    rates, visits, frames = {}, {}, {}
    for threshold in THRESHOLDS:
        matcher = _matcher(templates, threshold)
        fr = fa = n = trials = 0
        any_fr = agree_fr = n_visits = frames_fr = n_frames = visit_fa = 0
        for s in probes:
            enrolled = s.item.person in templates
            decision = matcher.match(s.encoding) if s.encoding is not None else None
            if enrolled:
                n += 1
                fr += not _accepts(matcher, s.encoding, s.item.person)
            trials += len(templates) - enrolled
            if isinstance(decision, Match) and decision.elder_id != s.item.person:
                fa += 1
            if enrolled and with_visits and s.visit:
                ok = [_accepts(matcher, e, s.item.person) for e in s.visit]
                n_visits += 1
                any_fr += not any(ok)
                agree_fr += not any(sum(ok[i : i + 3]) >= 2 for i in range(len(ok) - 2))
                frames_fr += ok.count(False)
                n_frames += len(ok)
                visit_fa += sum(
                    isinstance(d, Match) and d.elder_id != s.item.person
                    for d in (matcher.match(e) for e in s.visit[1:] if e is not None)
                )
        for enc in strangers:
            trials += len(templates)
            fa += isinstance(matcher.match(enc), Match)
        rates[threshold] = (fr, n, fa, trials)
        visits[threshold] = (any_fr, agree_fr, n_visits, visit_fa)
        frames[threshold] = (frames_fr, n_frames)
    return Scores(genuine, impostor, rates, visits, frames)


def clean_rates(
    samples: list[FaceSample], faces: Path, make: TemplateMaker
) -> tuple[dict[float, tuple[int, int, int]], float, float]:
    """FR, genuine, FA per threshold on the clean photos (train/ templates, leave-one-out),
    the worst genuine and the nearest impostor distance."""
    train = [s for s in samples if s.role == "train"]
    made = [
        (s.label, s.image, t)
        for s in train
        for t in make(load_rgb(faces / s.image), s.box, s.encoding)
    ]
    worst, nearest_impostor = 0.0, math.inf
    out = {}
    for threshold in THRESHOLDS:
        fr = n = fa = 0
        for probe in samples:
            roster = [(who, t) for who, image, t in made if image != probe.image]
            matcher = FaceMatcher(threshold, DEFAULT_MIN_MARGIN)
            matcher.set_roster(roster)
            decision = matcher.match(probe.encoding)
            known = probe.label is not None and any(who == probe.label for who, _ in roster)
            if known:
                n += 1
                fr += not (isinstance(decision, Match) and decision.elder_id == probe.label)
            if isinstance(decision, Match) and decision.elder_id != probe.label:
                fa += 1
            if threshold == THRESHOLDS[0]:
                for who, t in roster:
                    d = float(np.linalg.norm(t - probe.encoding))
                    if who == probe.label:
                        continue
                    nearest_impostor = min(nearest_impostor, d)
                if known:
                    own = min(float(np.linalg.norm(t - probe.encoding)) for w, t in roster
                              if w == probe.label)  # fmt: skip
                    worst = max(worst, own)
        out[threshold] = (fr, n, fa)
    return out, worst, nearest_impostor


# -- probe-side variants: photometric normalisation of the aligned chip, upscaling ----------


def _clahe(chip: Image, clip: float = 2.0) -> Image:
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clip, (4, 4)).apply(lab[:, :, 0])
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), dtype=np.uint8)


def _gamma(chip: Image) -> Image:
    """Gamma that brings the mean grey of the face centre to mid-grey."""
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    mean = max(float(lab[37:113, 37:113, 0].mean()) / 255, 0.02)
    lut = np.clip(255 * (np.arange(256) / 255) ** (np.log(0.5) / np.log(mean)), 0, 255)
    lab[:, :, 0] = lut.astype(np.uint8)[lab[:, :, 0]]
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), dtype=np.uint8)


def _stretch(chip: Image) -> Image:
    """Grey levels stretched between the 1st and 99th percentile of the face centre."""
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    grey = lab[:, :, 0].astype(np.float32)
    lo, hi = np.percentile(grey[37:113, 37:113], [1, 99])
    lab[:, :, 0] = np.clip((grey - lo) * 255 / max(hi - lo, 1), 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), dtype=np.uint8)


PROBE_VARIANTS: dict[str, tuple[Callable[[Image], Image], float]] = {
    "CLAHE on the aligned chip (clip 2, 4x4)": (_clahe, 1.0),
    "CLAHE, clip 3": (lambda c: _clahe(c, 3.0), 1.0),
    "gamma to mid-grey on the chip": (_gamma, 1.0),
    "gamma + CLAHE": (lambda c: _clahe(_gamma(c)), 1.0),
    "percentile stretch of the chip": (_stretch, 1.0),
    "image upscaled 2x (bicubic) before the 5 landmarks": (lambda c: c, 2.0),
}


def chip_encoding(
    image: Image, box: FaceBox, norm: Callable[[Image], Image], up: float
) -> Encoding:
    """dlib's own steps (5 points, aligned 150 px chip with padding 0.25, ResNet) with the
    chip normalised in between; `up` enlarges the image before the landmarks."""
    import dlib

    from kiosk.face.weights import face_encoder, shape_predictor_5

    if up != 1.0:
        image = np.asarray(
            cv2.resize(image, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC), dtype=np.uint8
        )
    top, right, bottom, left = (round(v * up) for v in box.css())
    shape = shape_predictor_5()(image, dlib.rectangle(left, top, right, bottom))
    chip = np.ascontiguousarray(norm(np.asarray(dlib.get_face_chip(image, shape, 150, 0.25))))
    return np.asarray(face_encoder().compute_face_descriptor(chip, 1), dtype=np.float32)


def probe_variant_rates(
    shots: list[Shot], stranger_shots: list[tuple[Image, FaceBox]], name: str, both: bool
) -> tuple[int, int, int, int]:
    """FR, genuine, FA, trials per frame at the default threshold with one variant applied to
    the probes and strangers (and, when `both`, to the enrolment images too)."""
    norm, up = PROBE_VARIANTS[name]

    def variant(image: Image, box: FaceBox, plain: Encoding) -> list[Encoding]:
        return [chip_encoding(image, box, norm, up)] if both else [plain]

    templates, sources = enrol(shots, variant)
    matcher = _matcher(templates, DEFAULT_THRESHOLD)
    fr = n = fa = trials = 0
    for s in shots:
        if sources.get(s.item.person) == s.item.source:
            continue
        enc = None
        if s.image is not None and s.box is not None:
            enc = chip_encoding(s.image, s.box, norm, up)
        enrolled = s.item.person in templates
        trials += len(templates) - enrolled
        if enrolled:
            n += 1
            fr += not _accepts(matcher, enc, s.item.person)
        decision = matcher.match(enc) if enc is not None else None
        fa += isinstance(decision, Match) and decision.elder_id != s.item.person
    for image, box in stranger_shots:
        trials += len(templates)
        fa += isinstance(matcher.match(chip_encoding(image, box, norm, up)), Match)
    return fr, n, fa, trials


def kiosk_view(rgb: Image) -> Image:
    """The photo as the kiosk's camera frame: on a grey 640x480 frame at its own size (shrunk
    only when larger), as bench.face_tools.detector_compare places it."""
    h, w = rgb.shape[:2]
    scale = min(1.0, 640 / w, 480 / h)
    img = (
        cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if scale < 1
        else rgb
    )
    frame = np.full((480, 640, 3), 96, np.uint8)
    frame[: img.shape[0], : img.shape[1]] = img
    return frame


def kiosk_encoding(
    detector: FaceDetector,
    rgb: Image,
    misses: dict[str, int] | None = None,
    min_face_px: int = DEFAULT_MIN_FACE_PX,
) -> Encoding | None:
    """What the worker's pipeline makes of one frame: the largest face if >= 64 px; counts
    frames with no face at all ("none") and with only smaller ones ("small") in `misses`."""
    frame = kiosk_view(rgb)
    boxes = detector.detect(frame)
    box = choose_face(boxes, detector.min_size(min_face_px))  # as FacePipeline does
    if box is None and misses is not None:
        misses["small" if boxes else "none"] += 1
    return None if box is None else encode_face(frame, box)


def compare_detectors(
    faces: Path,
    names: list[str],
    variants: int,
    seed: int,
    visit_frames_n: int,
    min_face_px: int = DEFAULT_MIN_FACE_PX,
) -> None:
    """Side by side: each detector for enrolment, kiosk probes, visits and strangers."""
    import time

    items = build(faces, variants, seed)
    roc = ["| detector | set | " + " | ".join(f"{t:.2f}" for t in THRESHOLDS) + " |",
           "|---|---|" + "---|" * len(THRESHOLDS)]  # fmt: skip
    summary = [
        "| detector | failed to enrol | photos passing the gates | probes with no usable face "
        "| visit frames with no usable face (no face / under the floor) | all 78 at kiosk scale: "
        "no face / under the floor (64 px; YuNet boxes 54) | strangers | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    frames_of: dict[int, list[Image]] = {}
    plain = TEMPLATES["enrolment encoding only (before)"]
    for name in names:
        t0 = time.perf_counter()
        enrol_detector = make_detector(name, enrol=True)
        kiosk = make_detector(name)
        shots = [shoot(item, enrol_detector) for item in items]
        every = {"none": 0, "small": 0}
        for s in shots:
            s.probe = kiosk_encoding(kiosk, s.item.image, every, min_face_px)
        misses = {"none": 0, "small": 0}
        templates, sources = enrol(shots, plain)
        for n, s in enumerate(shots):
            if s.item.person in sources and sources[s.item.person] != s.item.source:
                if n not in frames_of:  # the same frames for every detector
                    frames_of[n] = visit_frames(faces, s.item, visit_frames_n - 1, seed=1000 + n)
                s.visit = [s.probe] + [
                    kiosk_encoding(kiosk, f, misses, min_face_px) for f in frames_of[n]
                ]
        strangers = []
        crowd = [*sorted((faces / "crowd").glob("*.jp*g")), faces / "lin-manuel-miranda.png"]
        for path in crowd:
            image = fit_photo(load_rgb(path))
            strangers += [encode_face(image, b) for b in enrol_detector.detect(image)]
        sc = score(shots, strangers, plain, visit_frames_n > 1, kiosk_probes=True)
        probes = [s for s in shots if sources.get(s.item.person) != s.item.source]
        visit_all = [e for s in probes for e in s.visit]
        people = {s.item.person for s in shots}
        summary.append(
            f"| {name} | {len(people) - len(templates)} of {len(people)} | "
            f"{sum(s.gate_ok for s in shots)} / "
            f"{len(shots)} | {sum(s.probe is None for s in probes)} / {len(probes)} | "
            f"{sum(e is None for e in visit_all)} / {len(visit_all)} (9 more frames each: "
            f"{misses['none']} / {misses['small']}) | {every['none']} / {every['small']} | "
            f"{len(strangers)} | "
            f"{time.perf_counter() - t0:.0f} |"
        )
        r0 = sc.rates[THRESHOLDS[0]]
        roc.append(f"| {name} | per frame: FR/{r0[1]} · FA/{r0[3]} | "
                   + " | ".join(f"{r[0]} · {r[2]}" for r in sc.rates.values()) + " |")  # fmt: skip
        if visit_frames_n > 1:
            n_visits = sc.visits[THRESHOLDS[0]][2]
            roc.append(f"| {name} | per visit of {visit_frames_n} frames, 2 of 3: FR/{n_visits} | "
                       + " | ".join(str(v[1]) for v in sc.visits.values()) + " |")  # fmt: skip
            roc.append(f"| {name} | per visit, any 1 frame: FR/{n_visits} | "
                       + " | ".join(str(v[0]) for v in sc.visits.values()) + " |")  # fmt: skip
            cells = [f"{f[0]} · {v[3]}" for f, v in zip(sc.frames.values(), sc.visits.values(),
                                                          strict=True)]  # fmt: skip
            roc.append(f"| {name} | visit frames: FR/{sc.frames[THRESHOLDS[0]][1]} · FA | "
                       + " | ".join(cells) + " |")  # fmt: skip
        log.info("done: %s", name)
    log.info("%s\n\n%s", "\n".join(summary), "\n".join(roc))


def _pct(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    p = np.percentile(finite, [0, 5, 50, 95, 100])
    missing = len(values) - len(finite)
    return (f"{len(values)} | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} | {p[3]:.3f} | {p[4]:.3f}"
            + (f" (+{missing} no face)" if missing else ""))  # fmt: skip


def add_visits(shots: list[Shot], faces: Path, visit_frames_n: int) -> None:
    """Each genuine probe's visit: the probe and more frames of its recipe, found as
    enrolment finds faces (full size, one upsampling)."""
    _, sources = enrol(shots, TEMPLATES["enrolment encoding only (before)"])
    for n, s in enumerate(shots):
        if s.item.person in sources and sources[s.item.person] != s.item.source:
            s.visit = [s.encoding]
            for frame in visit_frames(faces, s.item, visit_frames_n - 1, seed=1000 + n):
                image = fit_photo(frame)
                boxes = detect_faces(image, scale=1.0, upsample=1)
                s.visit.append(encode_face(image, boxes[0]) if boxes else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--seed", type=int, default=15, help="15 is the calibration set")
    parser.add_argument("--visit-frames", type=int, default=10, help="0: no visits")
    parser.add_argument("--only", default=None, help="one TEMPLATES name (substring)")
    parser.add_argument(
        "--probe-variants", action="store_true", help="also chip normalisation and upscaling"
    )
    parser.add_argument(
        "--detector",
        default=None,
        help="compare detectors at kiosk scale instead (comma-separated: hog,yunet)",
    )
    parser.add_argument(
        "--min-face-px", type=int, default=DEFAULT_MIN_FACE_PX, help="with --detector"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    faces = require_face_data(args.faces)
    if args.detector:
        names = [n.strip() for n in args.detector.split(",") if n.strip()]
        compare_detectors(
            faces, names, args.variants, args.seed, args.visit_frames, args.min_face_px
        )
        return
    items = build(faces, args.variants, args.seed)
    shots = [shoot(item) for item in items]
    samples = load_samples(faces)
    strangers = [s.encoding for s in samples if s.role == "stranger"]
    if args.visit_frames > 1:
        add_visits(shots, faces, args.visit_frames)
    dist = [
        "| templates | pairs | n | min | p5 | median | p95 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    roc = ["| templates | set | " + " | ".join(f"{t:.2f}" for t in THRESHOLDS) + " |",
           "|---|---|" + "---|" * len(THRESHOLDS)]  # fmt: skip
    for name, make in TEMPLATES.items():
        if args.only and args.only not in name:
            continue
        sc = score(shots, strangers, make, args.visit_frames > 1)
        dist.append(f"| {name} | genuine | {_pct(sc.genuine)} |")
        dist.append(f"| {name} | impostor | {_pct(sc.impostor)} |")
        roc.append(f"| {name} | degraded, per frame: FR/{sc.rates[THRESHOLDS[0]][1]} · "
                   f"FA/{sc.rates[THRESHOLDS[0]][3]} | "
                   + " | ".join(f"{r[0]} · {r[2]}" for r in sc.rates.values()) + " |")  # fmt: skip
        if args.visit_frames > 1:
            n_visits = sc.visits[THRESHOLDS[0]][2]
            roc.append(f"| {name} | degraded, per visit of {args.visit_frames} frames, "
                       f"2 of 3: FR/{n_visits} | "
                       + " | ".join(str(v[1]) for v in sc.visits.values()) + " |")  # fmt: skip
            roc.append(f"| {name} | degraded, per visit, any 1 frame: FR/{n_visits} | "
                       + " | ".join(str(v[0]) for v in sc.visits.values()) + " |")  # fmt: skip
            cells = [
                f"{f[0]} · {v[3]}"
                for f, v in zip(sc.frames.values(), sc.visits.values(), strict=True)
            ]
            n_frames = sc.frames[THRESHOLDS[0]][1]
            roc.append(
                f"| {name} | degraded, visit frames: FR/{n_frames} · FA | {' | '.join(cells)} |"
            )
        clean, worst, nearest = clean_rates(samples, faces, make)
        roc.append(f"| {name} | clean photos + crowd: FR/{clean[THRESHOLDS[0]][1]} · FA "
                   f"(worst genuine {worst:.3f}, nearest impostor {nearest:.3f}) | "
                   + " | ".join(f"{r[0]} · {r[2]}" for r in clean.values()) + " |")  # fmt: skip
        log.info("done: %s", name)
    log.info("%s\n\n%s", "\n".join(dist), "\n".join(roc))
    if args.probe_variants:
        stranger_shots = [
            (load_rgb(faces / s.image), s.box) for s in samples if s.role == "stranger"
        ]
        lines = ["| on the probe (and the templates) | FR · FA at 0.45, templates and probes "
                 "| probes only |", "|---|---|---|"]  # fmt: skip
        for name in PROBE_VARIANTS:
            both = probe_variant_rates(shots, stranger_shots, name, both=True)
            alone = probe_variant_rates(shots, stranger_shots, name, both=False)
            lines.append(f"| {name} | {both[0]} / {both[1]} · {both[2]} / {both[3]} | "
                         f"{alone[0]} / {alone[1]} · {alone[2]} / {alone[3]} |")  # fmt: skip
        log.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
