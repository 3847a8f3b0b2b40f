"""Face frame -> decision at 640x480, per stage, against the naive face_recognition pipeline.

Frames: the photos of ../shared/faces (train + test) and frames of its video clip, each fitted
into a 640x480 canvas, as the camera would deliver them (BGR).

Ours: `FacePipeline.analyze_bgr` (BGR->RGB, HOG on a 0.75 copy without upsampling, choose the
largest face, one 5-point-aligned encoding) then `FaceMatcher.match` over the roster.
Baseline: what the face_recognition README does: full-frame HOG with its default one
upsampling, `face_encodings` of every face found, `compare_faces` over a Python list of the
known encodings. Both run on the same frame, alternating which goes first.

`BENCH_FACE_DETECTORS=hog,yunet` (or `python -m bench --only face --face-detector hog,yunet`)
also runs our pipeline with each other face detector named (`face.detector`, at the kiosk's
settings) on the same frames, interleaved, and adds its rows with the detector's name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import (
    FACE_DATA,
    Budget,
    Context,
    Row,
    Skip,
    dominant,
    p50,
    p99,
    profile_summary,
)

WIDTH, HEIGHT = 640, 480
ROSTER = 1000  # templates in both rosters (the enrolled photos + random fillers)
BUDGET = Budget("<=", 50.0, "ms")
BASELINE_LABEL = (
    "face_recognition README loop: face_locations (full frame, HOG, upsample=1), "
    "face_encodings of every face, compare_faces over a Python list"
)


def face_data() -> Path:
    if not (FACE_DATA / "train").is_dir():
        raise Skip(f"face data not found at {FACE_DATA} (never copied into the repo)")
    return FACE_DATA


def fit(image_bgr: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Scale to fit and centre on a grey 640x480 canvas (a camera frame's size)."""
    import cv2

    h, w = image_bgr.shape[:2]
    scale = min(width / w, height / h)
    resized = cv2.resize(image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)  # fmt: skip
    canvas = np.full((height, width, 3), 96, dtype=np.uint8)
    top = (height - resized.shape[0]) // 2
    left = (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def load_frames(root: Path, clip_frames: int) -> list[tuple[str, np.ndarray]]:
    import cv2

    frames = []
    paths = sorted((root / "train").glob("*/*")) + sorted((root / "test").glob("*"))
    for path in paths:
        image = cv2.imread(str(path))
        if image is not None:
            frames.append((str(path.relative_to(root)), fit(image)))
    clip = root / "short_hamilton_clip.mp4"
    if clip.exists() and clip_frames:
        cap = cv2.VideoCapture(str(clip))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        for k in range(clip_frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k * total // clip_frames)
            ok, frame = cap.read()
            if ok:
                frames.append((f"clip#{k}", fit(frame)))
        cap.release()
    return frames


def roster(frames: list[tuple[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """Encodings of the enrolment photos plus random fillers up to ROSTER templates."""
    import cv2

    from kiosk.face.pipeline import FacePipeline

    pipe = FacePipeline(detect_scale=1.0, upsample=1, min_face_px=20, coarse_scale=None)
    ids, encs = [], []
    for name, frame in frames:
        if name.startswith("train/"):
            got = pipe.analyze(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if got.encoding is not None:
                ids.append(name.split("/")[1])
                encs.append(got.encoding)
    rng = np.random.default_rng(0)
    filler = rng.normal(0, 0.09, size=(ROSTER - len(encs), 128)).astype(np.float32)
    ids += [f"filler{i // 2}" for i in range(len(filler))]
    return ids, np.vstack([np.array(encs, dtype=np.float32).reshape(-1, 128), filler])


def run(ctx: Context) -> list[Row]:  # noqa: PLR0912, PLR0915
    import face_recognition

    from kiosk.face import FaceMatcher
    from kiosk.face.pipeline import FacePipeline

    root = face_data()
    frames = load_frames(root, clip_frames=ctx.size(2, 10))
    if ctx.quick:
        frames = frames[:: max(1, len(frames) // 6)][:6]
    ids, encodings = roster(load_frames(root, 0))
    matcher = FaceMatcher()
    matcher.set_templates(ids, encodings)
    known = [e.astype(np.float64) for e in encodings]  # how naive code keeps known faces
    pipeline = FacePipeline()  # the kiosk defaults (docs/face.md)
    reps = ctx.size(1, 3)
    from kiosk.face.detect import make_detector

    names = (os.environ.get("BENCH_FACE_DETECTORS") or "hog").split(",")
    others = {n.strip(): FacePipeline(detector=make_detector(n.strip()))
              for n in names if n.strip() and n.strip() != "hog"}  # fmt: skip
    other_times: dict[str, dict[str, list[float]]] = {
        n: {"detect": [], "one face": [], "total": []} for n in others
    }

    def run_other(name: str, frame: np.ndarray) -> None:
        t0 = time.perf_counter()
        analysis = others[name].analyze_bgr(frame)
        if analysis.encoding is not None:
            matcher.match(analysis.encoding)
        total = (time.perf_counter() - t0) * 1000
        other_times[name]["detect"].append(analysis.timings.detect_ms)
        other_times[name]["total"].append(total)
        if analysis.encoding is not None:
            other_times[name]["one face"].append(total)

    ours: dict[str, list[float]] = {
        k: [] for k in ("convert", "detect", "encode", "match", "total")
    }
    base: dict[str, list[float]] = {
        k: [] for k in ("convert", "detect", "encode", "match", "total")
    }
    one_face_ours: list[float] = []
    one_face_base: list[float] = []

    def run_ours(frame: np.ndarray) -> bool:
        t0 = time.perf_counter()
        analysis = pipeline.analyze_bgr(frame)
        t1 = time.perf_counter()
        if analysis.encoding is not None:
            matcher.match(analysis.encoding)
        t2 = time.perf_counter()
        tm = analysis.timings
        ours["convert"].append(tm.convert_ms)
        ours["detect"].append(tm.detect_ms)
        if analysis.encoding is not None:
            ours["encode"].append(tm.encode_ms)
            ours["match"].append((t2 - t1) * 1000)
        total = (t2 - t0) * 1000
        ours["total"].append(total)
        if analysis.encoding is not None:
            one_face_ours.append(total)
        return analysis.encoding is not None

    def run_base(frame: np.ndarray) -> int:
        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(
            frame[:, :, ::-1]
        )  # README: frame[:, :, ::-1] (+ the copy new dlib needs)
        t1 = time.perf_counter()
        locations = face_recognition.face_locations(rgb)
        t2 = time.perf_counter()
        encs = face_recognition.face_encodings(rgb, locations)
        t3 = time.perf_counter()
        for enc in encs:
            face_recognition.compare_faces(known, enc, tolerance=0.45)
        t4 = time.perf_counter()
        base["convert"].append((t1 - t0) * 1000)
        base["detect"].append((t2 - t1) * 1000)
        if encs:
            base["encode"].append((t3 - t2) * 1000 / len(encs))
            base["match"].append((t4 - t3) * 1000 / len(encs))
        total = (t4 - t0) * 1000
        base["total"].append(total)
        return len(encs)

    # Warm-up: model files, dlib's first-call allocations.
    run_ours(frames[0][1])
    run_base(frames[0][1])
    for name in others:
        run_other(name, frames[0][1])
        for values in other_times[name].values():
            values.clear()
    for key, values in ours.items():
        values.clear()
        base[key].clear()
    one_face_ours.clear()

    for rep in range(reps):
        for i, (_name, frame) in enumerate(frames):
            if (i + rep) % 2 == 0:
                found = run_ours(frame)
                n = run_base(frame)
            else:
                n = run_base(frame)
                found = run_ours(frame)
            if found and n == 1:
                one_face_base.append(base["total"][-1])
            for name in others:
                run_other(name, frame)

    rows = []
    common: dict[str, Any] = {"bench": "face", "unit": "ms", "baseline_label": BASELINE_LABEL}
    for stage in ("convert", "detect", "encode", "match"):
        rows.append(Row(metric=f"{stage} p50", ours=p50(ours[stage]), baseline=p50(base[stage]),
                        n=len(ours[stage]), **common))  # fmt: skip
        if stage in ("detect", "encode"):
            rows.append(Row(metric=f"{stage} p99", ours=p99(ours[stage]),
                            baseline=p99(base[stage]), n=len(ours[stage]), **common))  # fmt: skip
    rows.append(Row(metric="frame->decision, one face, p50", ours=p50(one_face_ours),
                    baseline=p50(one_face_base), budget=BUDGET, n=len(one_face_ours),
                    **common))  # fmt: skip
    rows.append(Row(metric="frame->decision, one face, p99", ours=p99(one_face_ours),
                    baseline=p99(one_face_base), n=len(one_face_ours), **common))  # fmt: skip
    rows.append(Row(metric="frame->decision, any frame, p50", ours=p50(ours["total"]),
                    baseline=p50(base["total"]), n=len(ours["total"]), **common))  # fmt: skip
    for name, times in other_times.items():
        for metric, key in (("detect p50", "detect"), ("frame->decision, one face, p50",
                            "one face"), ("frame->decision, any frame, p50", "total")):  # fmt: skip
            rows.append(Row(metric=f"{metric}, {name}", ours=p50(times[key]), n=len(times[key]),
                            **common))  # fmt: skip
        ctx.note(
            f"{name}: a usable face in {len(times['one face'])} of {len(times['total'])} frames "
            f"(hog: {len(one_face_ours)} of {len(ours['total'])})"
        )
    ctx.note(
        f"{len(frames)} frames x {reps}, 640x480; roster {ROSTER} templates "
        f"({len(ids) - ROSTER + sum(1 for i in ids if not i.startswith('filler'))} of them from "
        "the enrolment photos). Baseline per-stage encode/match figures are per face."
    )
    if p50(one_face_ours) > BUDGET.value:
        _profile(ctx, pipeline, matcher, [f for _n, f in frames], encodings)
    ctx.extra["stages_ms"] = {
        "ours": {k: p50(v) for k, v in ours.items()},
        "baseline": {k: p50(v) for k, v in base.items()},
    }
    return rows


def _profile(ctx: Context, pipeline: Any, matcher: Any, frames: list[np.ndarray], _: Any) -> None:
    import dlib

    def frames_through() -> None:
        for frame in frames[:8]:
            analysis = pipeline.analyze_bgr(frame)
            if analysis.encoding is not None:
                matcher.match(analysis.encoding)

    text, own, total = profile_summary(frames_through, top=12)
    ctx.profiles["our pipeline, 8 frames, by own time"] = text
    ctx.note(
        f"Budget missed. cProfile of 8 frames ({total:.2f} s), largest own time: "
        f"{dominant(own, total)}. `compute_face_descriptor` is the ResNet forward pass behind "
        "face_encodings; `_raw_face_locations` is HOG detection. This dlib is built with "
        f"DLIB_USE_BLAS={bool(dlib.DLIB_USE_BLAS)} "
        f"(AVX={bool(getattr(dlib, 'USE_AVX_INSTRUCTIONS', False))}): the dlib-bin wheel runs "
        "the ResNet on its own matrix code. The fix is the build, not Python: "
        "`make dlib-blas` (dlib against OpenBLAS; docs/face.md: encoding 15 ms vs 80 ms)."
    )
