"""The kiosk's HOG detector side by side with YuNet (libfacedetection, PyPI `yuface`).

    python -m bench.face_tools.detector_compare [--scale 0.5]

Both through kiosk.face.detect.make_detector (`face.detector: hog | yunet`; YuNet needs the
`yuface` package, x86-64 only; single-threaded as the kiosk loads it). Detection only; what
the detectors do to false rejects and accepts is `bench.face_tools.degraded_frr --detector`.
Frames: the face benchmark's (bench/face.py:
photos of ../shared/faces letterboxed to 640x480 plus 4 clip frames), 3 rounds; then the
degraded set (bench/face_tools/degraded.py) placed at its own size on a 640x480 frame: how
many of its 78 faces each detector finds at all. Last, whether dlib's 5-point alignment and
encoding work from a YuNet box: the distance between the encodings from the two boxes of
the same face (the threshold is 0.45).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.face import load_frames
from bench.face_tools.dataset import require_face_data
from bench.face_tools.degraded import build
from kiosk.face.detect import FaceBox, detect_faces, make_detector
from kiosk.face.encode import encode_face

log = logging.getLogger(__name__)
Frame = NDArray[np.uint8]


def yunet(scale: float) -> Callable[[Frame], list[FaceBox]]:
    detector = make_detector("yunet", scale)

    def detect(bgr: Frame) -> list[FaceBox]:
        return detector.detect(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8))

    return detect


def hog(bgr: Frame) -> list[FaceBox]:
    """The kiosk's defaults (FacePipeline: scale 0.75, no upsampling)."""
    return detect_faces(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8), 0.75, 0)


def on_canvas(rgb: Frame) -> Frame:
    h, w = rgb.shape[:2]
    scale = min(1.0, 640 / w, 480 / h)
    img = cv2.resize(rgb, None, fx=scale, fy=scale) if scale < 1 else rgb
    canvas = np.full((480, 640, 3), 96, np.uint8)
    canvas[: img.shape[0], : img.shape[1]] = img[:, :, ::-1]
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5, help="YuNet input scale")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    faces = require_face_data()
    detectors: dict[str, Callable[[Frame], list[FaceBox]]] = {
        "HOG (kiosk: scale 0.75, upsample 0)": hog,
        f"YuNet / yuface (scale {args.scale})": yunet(args.scale),
    }
    frames = load_frames(faces, 4)
    for detect in detectors.values():
        detect(frames[0][1])  # load models
    times: dict[str, list[float]] = {name: [] for name in detectors}
    found: dict[str, int] = dict.fromkeys(detectors, 0)
    for _ in range(args.rounds):
        for _, bgr in frames:
            for name, detect in detectors.items():  # interleaved: the same load for both
                t0 = time.perf_counter()
                boxes = detect(bgr)
                times[name].append((time.perf_counter() - t0) * 1000)
                found[name] += bool(boxes)
    degraded = [on_canvas(item.image) for item in build(faces, 6)]
    rows = [
        "| detector (640x480) | p50 ms | p90 ms | bench frames with a face | degraded faces |",
        "|---|---|---|---|---|",
    ]
    for name, detect in detectors.items():
        hits = sum(bool(detect(img)) for img in degraded)
        rows.append(
            f"| {name} | {statistics.median(times[name]):.1f} | "
            f"{np.percentile(times[name], 90):.1f} | {found[name] // args.rounds} / {len(frames)} "
            f"| {hits} / {len(degraded)} |"
        )
    drift: list[float] = []
    hog_box, yn_box = detectors.values()
    for _, bgr in frames:
        a, b = hog_box(bgr), yn_box(bgr)
        if a and b:
            rgb: Any = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            drift.append(float(np.linalg.norm(encode_face(rgb, a[0]) - encode_face(rgb, b[0]))))
    log.info("%s", "\n".join(rows))
    if drift:
        log.info(
            "encoding from the YuNet box vs the HOG box of the same face: n=%d, median %.3f, "
            "max %.3f", len(drift), statistics.median(drift), max(drift),
        )  # fmt: skip


if __name__ == "__main__":
    main()
