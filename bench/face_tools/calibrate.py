"""Measure genuine and impostor distances on ../shared/faces and the error rates per threshold.

    python -m bench.face_tools.calibrate [--faces DIR] [--timings]

Enrols train/ (one template per photo), then probes with:
  * every face of test/ (labelled; the child in obama_and_biden.jpg is a stranger),
  * every train photo leave-one-out (its own template removed; a person with a single photo
    then becomes a stranger to the rest of the roster, which is a realistic impostor case),
  * two_people.jpg (Obama and Biden, despite the data README; see dataset.py),
  * every face of lin-manuel-miranda.png and crowd/ (strangers),
  * every 3rd frame of short_hamilton_clip.mp4 (Lin-Manuel Miranda) at kiosk detection
    settings, against the roster plus lin-manuel-miranda.png: per-frame acceptance on video.
A probe is decided exactly like `FaceMatcher.decide`: best distance <= threshold and
(best other elder - best) >= margin. The results table and the chosen defaults are in
docs/face.md.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.face_tools.dataset import FaceSample, find_face_data, load_samples
from kiosk.face.matcher import DEFAULT_MIN_MARGIN, DEFAULT_THRESHOLD, ENCODING_DIM, FaceMatcher

log = logging.getLogger("bench.face_tools.calibrate")

# 0.40 .. 0.60 as asked, then on to 0.70 to show where the first impostors come in.
THRESHOLDS = [round(0.40 + 0.02 * i, 2) for i in range(16)]
MARGINS = [0.0, 0.03, 0.05, 0.06, 0.08, 0.10]


@dataclass(frozen=True)
class Probe:
    sample: FaceSample
    label: str | None  # None when the person has no template in this probe's roster
    per_elder: dict[str, float]  # the nearest template distance of each enrolled elder

    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.per_elder.items(), key=lambda kv: kv[1])


def build_probes(samples: Sequence[FaceSample]) -> list[Probe]:
    train = [s for s in samples if s.role == "train"]
    matrix = np.array([s.encoding for s in train], dtype=np.float32)
    probes = []
    for sample in samples:
        dists = np.linalg.norm(matrix - sample.encoding, axis=1)
        per_elder: dict[str, float] = {}
        for template, dist in zip(train, dists, strict=True):
            if template is sample or template.label is None:
                continue  # leave-one-out for train photos (train photos are all labelled)
            per_elder[template.label] = min(per_elder.get(template.label, math.inf), float(dist))
        label = sample.label if sample.label in per_elder else None
        probes.append(Probe(sample, label, per_elder))
    return probes


@dataclass(frozen=True)
class Rates:
    threshold: float
    margin: float
    genuine: int
    strangers: int
    false_reject: int  # genuine probe not accepted as its own elder (unknown or ambiguous)
    misidentified: int  # genuine probe accepted as a different elder
    stranger_accepted: int  # stranger accepted as some elder

    @property
    def false_accept(self) -> int:
        return self.misidentified + self.stranger_accepted

    @property
    def far(self) -> float:
        return self.false_accept / max(1, self.genuine + self.strangers)

    @property
    def frr(self) -> float:
        return self.false_reject / max(1, self.genuine)


def decide(probe: Probe, threshold: float, margin: float) -> str | None:
    ranked = probe.ranked()
    if not ranked:
        return None
    best, best_d = ranked[0]
    second_d = ranked[1][1] if len(ranked) > 1 else math.inf
    if best_d <= threshold and second_d - best_d >= margin:
        return best
    return None


def evaluate(probes: Sequence[Probe], threshold: float, margin: float) -> Rates:
    genuine = [p for p in probes if p.label is not None]
    strangers = [p for p in probes if p.label is None]
    false_reject = misidentified = 0
    for probe in genuine:
        decided = decide(probe, threshold, margin)
        if decided is None:
            false_reject += 1
        elif decided != probe.label:
            misidentified += 1
            false_reject += 1
    accepted = sum(decide(p, threshold, margin) is not None for p in strangers)
    return Rates(
        threshold, margin, len(genuine), len(strangers), false_reject, misidentified, accepted
    )


def distances(probes: Sequence[Probe]) -> tuple[list[float], list[float]]:
    """Genuine: probe to its own elder. Impostor: probe to every other elder (nearest template)."""
    genuine: list[float] = []
    impostor: list[float] = []
    for probe in probes:
        for elder, dist in probe.per_elder.items():
            (genuine if elder == probe.label else impostor).append(dist)
    return sorted(genuine), sorted(impostor)


@dataclass(frozen=True)
class ClipFrames:
    """Per-frame nearest distances of the clip's largest face: to Lin and to the train roster."""

    to_enrolled: list[float]  # distance to lin-manuel-miranda.png
    to_others: list[float]  # nearest train elder
    frames: int

    def accepted(self, threshold: float, margin: float) -> tuple[int, int]:
        """(frames matched to Lin, frames matched to someone else) under the decision rule."""
        lin = other = 0
        for d_lin, d_other in zip(self.to_enrolled, self.to_others, strict=True):
            best, second = min(d_lin, d_other), max(d_lin, d_other)
            if best <= threshold and second - best >= margin:
                lin += d_lin <= d_other
                other += d_other < d_lin
        return lin, other


def clip_frames(root: Path, samples: Sequence[FaceSample], step: int = 3) -> ClipFrames | None:
    import cv2

    from bench.face_tools.dataset import CLIP, load_rgb
    from kiosk.face.detect import DEFAULT_DETECT_SCALE, DEFAULT_UPSAMPLE, choose_face, detect_faces
    from kiosk.face.encode import encode_face
    from kiosk.face.pipeline import DEFAULT_MIN_FACE_PX

    if not (root / CLIP).exists():
        return None
    lin_image = load_rgb(root / "lin-manuel-miranda.png")
    lin = encode_face(lin_image, detect_faces(lin_image)[0])
    train = np.array([s.encoding for s in samples if s.role == "train"], dtype=np.float32)
    capture = cv2.VideoCapture(str(root / CLIP))
    to_lin, to_other, index = [], [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if index % step:
                continue
            rgb = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            faces = detect_faces(rgb, DEFAULT_DETECT_SCALE, DEFAULT_UPSAMPLE)
            box = choose_face(faces, DEFAULT_MIN_FACE_PX)
            if box is None:
                continue
            enc = encode_face(rgb, box)
            to_lin.append(float(np.linalg.norm(lin - enc)))
            to_other.append(float(np.linalg.norm(train - enc, axis=1).min()))
    finally:
        capture.release()
    return ClipFrames(to_lin, to_other, index // step)


def _summary(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | 0 | | | | | |"
    q = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return f"| {name} | {len(values)} | " + " | ".join(f"{v:.3f}" for v in q) + " |"


def report(probes: Sequence[Probe], clip: ClipFrames | None = None) -> list[str]:
    genuine, impostor = distances(probes)
    margins = sorted(
        p.ranked()[1][1] - p.ranked()[0][1]
        for p in probes
        if p.label is not None and len(p.per_elder) > 1 and p.ranked()[0][0] == p.label
    )
    lines = [
        "Distances (nearest template of an elder):",
        "",
        "| pairs | n | min | p5 | median | p95 | max |",
        "|---|---|---|---|---|---|---|",
        _summary("genuine", genuine),
        _summary("impostor", impostor),
        _summary("genuine margin", margins),
        *([_summary("clip -> Lin (video)", sorted(clip.to_enrolled))] if clip else []),
        *([_summary("clip -> train (video)", sorted(clip.to_others))] if clip else []),
        "",
        "Genuine, all: " + ", ".join(f"{d:.3f}" for d in genuine),
        "Impostor, lowest 10: " + ", ".join(f"{d:.3f}" for d in impostor[:10]),
        "",
        "Closest impostors (probe -> elder):",
    ]
    worst = sorted(
        (d, p.sample.image, elder)
        for p in probes
        for elder, d in p.per_elder.items()
        if elder != p.label
    )[:8]
    lines += [f"  {d:.3f}  {image} -> {elder}" for d, image, elder in worst]
    n_gen = sum(p.label is not None for p in probes)
    lines += [
        "",
        f"Decisions: {n_gen} genuine probes, {len(probes) - n_gen} stranger probes.",
        "FA = false accepts (stranger matched + genuine matched to the wrong elder);",
        "FR = genuine probes not matched to their own elder (unknown, ambiguous or wrong).",
        f"clip = video frames matched to Lin / to anybody else, margin {DEFAULT_MIN_MARGIN}.",
        "",
        "| threshold | "
        + " | ".join(f"margin {m:.2f} FA / FR" for m in MARGINS)
        + (f" | clip ({len(clip.to_enrolled)} face frames)" if clip else "")
        + " |",
        "|---|" + "---|" * (len(MARGINS) + (1 if clip else 0)),
    ]
    for t in sorted({*THRESHOLDS, DEFAULT_THRESHOLD}):
        cells = []
        for m in MARGINS:
            r = evaluate(probes, t, m)
            cells.append(f"{r.false_accept} / {r.false_reject}")
        if clip:
            lin, other = clip.accepted(t, DEFAULT_MIN_MARGIN)
            cells.append(f"{lin} / {other}")
        lines.append(f"| {t:.2f} | " + " | ".join(cells) + " |")
    chosen = evaluate(probes, DEFAULT_THRESHOLD, DEFAULT_MIN_MARGIN)
    lines += [
        "",
        f"Chosen defaults threshold={DEFAULT_THRESHOLD} margin={DEFAULT_MIN_MARGIN}: "
        f"FAR {chosen.far:.1%} ({chosen.false_accept}/{chosen.genuine + chosen.strangers}), "
        f"FRR {chosen.frr:.1%} ({chosen.false_reject}/{chosen.genuine})",
    ]
    return lines


def stage_timings(root: Path, repeats: int = 5) -> list[str]:
    """Median per-stage milliseconds on 640x480 frames (test photos letterboxed to 640x480)."""
    import cv2

    from bench.face_tools.dataset import load_rgb
    from kiosk.face.detect import choose_face, detect_faces
    from kiosk.face.encode import encode_face, face_landmarks_68

    frames = []
    for path in sorted((root / "test").glob("*.jpg")):
        image = load_rgb(path)
        scale = min(640 / image.shape[1], 480 / image.shape[0])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[: small.shape[0], : small.shape[1]] = small
        frames.append(frame)

    def median_ms(fn: Callable[[NDArray[np.uint8]], object]) -> float:
        times = []
        for _ in range(repeats):
            for frame in frames:
                t0 = time.perf_counter()
                fn(frame)
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    lines = ["| stage (640x480) | median ms |", "|---|---|"]
    for scale, upsample in ((1.0, 0), (0.75, 0), (0.5, 0), (0.5, 1)):
        ms = median_ms(functools.partial(detect_faces, scale=scale, upsample=upsample))
        lines.append(f"| HOG detect, scale {scale}, upsample {upsample} | {ms:.1f} |")
    found = {id(f): choose_face(detect_faces(f, 1.0, 1), 20) for f in frames}
    boxes = {key: box for key, box in found.items() if box is not None}
    frames = [f for f in frames if id(f) in boxes]
    encode_ms = median_ms(lambda f: encode_face(f, boxes[id(f)]))
    landmarks_ms = median_ms(lambda f: face_landmarks_68(f, boxes[id(f)]))
    lines.append(f"| encode (5-point align + ResNet) | {encode_ms:.1f} |")
    lines.append(f"| 68-point landmarks (liveness) | {landmarks_ms:.1f} |")
    lines.append(
        f"| BGR->RGB convert | {median_ms(lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2RGB)):.2f} |"
    )
    for n in (1_000, 10_000, 50_000):
        b = bench_match(n)
        lines.append(
            f"| match {n} templates (p50 / p99; face_distance list / array p50) | "
            f"{b['matcher_p50_ms']:.2f} / {b['matcher_p99_ms']:.2f}; "
            f"{b['face_distance_list_p50_ms']:.1f} / {b['face_distance_array_p50_ms']:.1f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--faces",
        type=Path,
        default=None,
        help="face data folder (default: ../shared/faces or $KIOSK_FACE_DATA)",
    )
    parser.add_argument(
        "--timings", action="store_true", help="also measure per-stage timings at 640x480"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = find_face_data(args.faces)
    if root is None:
        log.error("face data not found (use --faces DIR or $KIOSK_FACE_DATA)")
        return 2
    t0 = time.perf_counter()
    samples = load_samples(root)
    log.info("encoded %d faces from %s in %.1f s", len(samples), root, time.perf_counter() - t0)
    clip = clip_frames(root, samples)
    for line in report(build_probes(samples), clip):
        log.info("%s", line)
    if args.timings:
        log.info("")
        for line in stage_timings(root):
            log.info("%s", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def bench_match(
    n_templates: int = 50_000,
    n_queries: int = 200,
    templates_per_elder: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Time `FaceMatcher.nearest` against face_recognition's face_distance baselines.

    For the benchmark harness, never for tests. Encodings are random unit-ish vectors: the
    arithmetic does not depend on the values. Returns milliseconds per query.
    """
    rng = np.random.default_rng(seed)
    templates = rng.normal(0, 0.09, size=(n_templates, ENCODING_DIM)).astype(np.float32)
    queries = rng.normal(0, 0.09, size=(n_queries, ENCODING_DIM)).astype(np.float32)
    elders = [f"e{i // templates_per_elder}" for i in range(n_templates)]
    matcher = FaceMatcher()
    matcher.set_templates(elders, templates)

    def timed(
        fn: Callable[[NDArray[np.float32]], object], queries_: NDArray[np.float32]
    ) -> list[float]:
        out = []
        for q in queries_:
            t0 = time.perf_counter()
            fn(q)
            out.append((time.perf_counter() - t0) * 1000)
        return sorted(out)

    matcher.nearest(queries[0])  # warm-up: page in the template matrix
    ours = timed(matcher.nearest, queries)

    from face_recognition import face_distance  # the naive baseline

    as_list = [t.astype(np.float64) for t in templates]  # how naive code keeps known faces
    as_array = templates.astype(np.float64)
    n_base = max(5, n_queries // 10)  # the list baseline is slow; fewer queries suffice
    base_list = timed(lambda q: face_distance(as_list, q), queries[:n_base])
    base_array = timed(lambda q: face_distance(as_array, q), queries[:n_base])

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return {
        "n_templates": float(n_templates),
        "matcher_p50_ms": pct(ours, 0.5),
        "matcher_p99_ms": pct(ours, 0.99),
        "face_distance_list_p50_ms": pct(base_list, 0.5),
        "face_distance_array_p50_ms": pct(base_array, 0.5),
    }
