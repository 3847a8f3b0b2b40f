"""Parallax liveness, window by window, on the live clip and on photo-attack videos.

For each video: detect at the kiosk's settings on every `--step`-th frame (the worker analyses
~10 of 30 frames a second), take dlib's 5 points, and score every window of the check
(kiosk.face.parallax). Reports, per video, how many windows pass, the strongest window
relative to the thresholds (1.0 = passes), and for the live clip how soon after the face
appears the first window passes. Attack videos are written to a temporary folder from the
photos given (bench/face_tools/attack_video.py).

`python -m bench.face_tools.liveness_eval [--faces DIR] [--photos train/kit_harington/john1.jpeg
...] [--kinds tilt turn screen] [--step 3] [--detect-scale 1.0 0.75]`
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.face_tools.attack_video import ATTACKS, write_attack_video
from bench.face_tools.dataset import CLIP, require_face_data
from kiosk.face.detect import DEFAULT_DETECT_SCALE, detect_faces
from kiosk.face.encode import face_points_5
from kiosk.face.parallax import ParallaxWindow

log = logging.getLogger(__name__)


@dataclass
class VideoScore:
    name: str
    face_frames: int
    windows: int
    passed: int
    strongest: float  # the best window's weakest criterion, relative to its threshold
    first_pass_s: float | None  # after the first face frame


def score_video(path: Path, step: int = 3, scale: float = DEFAULT_DETECT_SCALE) -> VideoScore:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    window = ParallaxWindow()
    n, faces, windows, passed, strongest = -1, 0, 0, 0, 0.0
    first_face: float | None = None
    first_pass: float | None = None
    while True:
        ok, frame = cap.read()
        n += 1
        if not ok:
            break
        if n % step:
            continue
        rgb = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        boxes = detect_faces(rgb, scale)
        if not boxes:
            continue
        t = n / fps
        first_face = t if first_face is None else first_face
        faces += 1
        points = face_points_5(rgb, boxes[0])
        score = window.add(points, t)
        if score is None:
            continue
        windows += 1
        passed += score.passed
        strength = min(
            score.ratio_range / window.min_ratio_range,
            score.nose_range / window.min_nose_range,
            score.correlation / window.min_correlation,
        )
        strongest = max(strongest, strength)
        if score.passed and first_pass is None:
            first_pass = t - first_face
    cap.release()
    return VideoScore(path.name, faces, windows, passed, round(strongest, 2), first_pass)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument(
        "--photos",
        nargs="*",
        default=["train/kit_harington/john1.jpeg", "train/rose_leslie/img1.jpg"],
    )
    parser.add_argument("--kinds", nargs="*", default=list(ATTACKS))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument(
        "--detect-scale", type=float, nargs="*", default=[DEFAULT_DETECT_SCALE],
        help="HOG scales to compare (one table each)",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    faces = require_face_data(args.faces)
    videos = [faces / CLIP]
    lines = [
        "| HOG scale | video | face frames | windows | passed | strongest | first pass after |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for photo in args.photos:
            for kind in args.kinds:
                out = Path(tmp) / f"{Path(photo).parent.name}-{kind}.mp4"
                write_attack_video(faces / photo, out, ATTACKS[kind], args.seconds)
                videos.append(out)
        for scale in args.detect_scale:
            for video in videos:
                s = score_video(video, args.step, scale)
                first = "-" if s.first_pass_s is None else f"{s.first_pass_s:.1f} s"
                lines.append(
                    f"| {scale} | {s.name} | {s.face_frames} | {s.windows} | {s.passed} "
                    f"| {s.strongest} | {first} |"
                )
    log.info("%s", "\n".join(lines))


if __name__ == "__main__":
    main()
