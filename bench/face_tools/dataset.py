"""The labelled photo set in ../shared/faces, for calibration and tests.

The photos are never copied into the repository; they are found at `$KIOSK_FACE_DATA` or at
`../shared/faces` beside the repository root. Ground truth for the test photos is written out
here, left to right for the photos that hold several faces.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kiosk.face.detect import FaceBox, detect_faces
from kiosk.face.encode import encode_face

log = logging.getLogger(__name__)

ENV_VAR = "KIOSK_FACE_DATA"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

# Probe photos: the person of each face, left to right; None = a stranger (not enrolled).
PROBE_LABELS: dict[str, list[str | None]] = {
    "test/alex_lacamoire1.jpg": ["alex_lacamoire"],
    "test/johnsnow_test1.jpg": ["kit_harington"],
    "test/obama1.jpg": ["obama"],
    "test/obama3.jpg": ["obama"],
    "test/obama_partial_face.jpg": ["obama"],
    "test/obama_and_biden.jpg": ["biden", "obama", None],  # the third: a child in the background
    "test/kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    # The data README lists two_people.jpg among the unknown faces, but it shows Obama (left)
    # and Biden (right), and the right half is the same photograph as train/biden/biden.jpg
    # (distance 0.07). It is a genuine probe, not a stranger.
    "two_people.jpg": ["obama", "biden"],
}
STRANGER_FILES = ("lin-manuel-miranda.png",)
STRANGER_DIRS = ("crowd",)
CLIP = "short_hamilton_clip.mp4"  # Lin-Manuel Miranda (matches lin-manuel-miranda.png)


def find_face_data(explicit: str | Path | None = None) -> Path | None:
    """The face data folder, or None where it is absent."""
    if explicit:  # an explicit folder that is wrong is an error, not a reason to look elsewhere
        candidates = [Path(explicit)]
    else:
        candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "faces"]
        if os.environ.get(ENV_VAR):
            candidates.insert(0, Path(os.environ[ENV_VAR]))
    return next((path for path in candidates if (path / "train").is_dir()), None)


def require_face_data(explicit: str | Path | None = None) -> Path:
    """find_face_data for a command-line tool: exits with the reason where it is absent."""
    faces = find_face_data(explicit)
    if faces is None:
        raise SystemExit(f"face photos not found (../shared/faces or ${ENV_VAR})")
    return faces


@dataclass(frozen=True)
class FaceSample:
    image: str  # path relative to the data folder
    role: str  # "train" | "test" | "stranger"
    label: str | None  # the enrolled person, None for strangers
    box: FaceBox
    encoding: NDArray[np.float32]


def load_rgb(path: Path) -> NDArray[np.uint8]:
    import face_recognition

    return face_recognition.load_image_file(str(path), mode="RGB")


def _faces(path: Path, scale: float, upsample: int) -> list[tuple[FaceBox, NDArray[np.float32]]]:
    image = load_rgb(path)
    boxes = detect_faces(image, scale=scale, upsample=upsample)
    return [(box, encode_face(image, box)) for box in boxes]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_samples(root: Path, scale: float = 1.0, upsample: int = 1) -> list[FaceSample]:
    """Detect and encode every face of the data set once.

    Defaults detect small faces too (~40 px with one upsample), so the crowd photos yield as
    many strangers as possible. Train photos contribute only their largest face.
    """
    samples: list[FaceSample] = []
    for person_dir in sorted(p for p in (root / "train").iterdir() if p.is_dir()):
        for path in _images(person_dir):
            faces = _faces(path, scale, upsample)
            if not faces:
                log.warning("no face in enrolment photo %s", path)
                continue
            box, enc = faces[0]  # largest first
            rel = str(path.relative_to(root))
            samples.append(FaceSample(rel, "train", person_dir.name, box, enc))
    for name, labels in PROBE_LABELS.items():
        path = root / name
        if not path.exists():
            log.warning("missing test photo %s", path)
            continue
        faces = sorted(_faces(path, scale, upsample), key=lambda f: f[0].left)
        if len(faces) != len(labels):
            log.warning("%s: %d faces found, %d labelled; skipped", name, len(faces), len(labels))
            continue
        for (box, enc), label in zip(faces, labels, strict=True):
            role = "test" if label else "stranger"
            samples.append(FaceSample(name, role, label, box, enc))
    stranger_paths = [root / n for n in STRANGER_FILES if (root / n).exists()]
    for folder in STRANGER_DIRS:
        if (root / folder).is_dir():
            stranger_paths += _images(root / folder)
    for path in stranger_paths:
        rel = str(path.relative_to(root))
        samples += [
            FaceSample(rel, "stranger", None, box, enc)
            for box, enc in _faces(path, scale, upsample)
        ]
    return samples
