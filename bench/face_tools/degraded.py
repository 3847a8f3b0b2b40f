"""A degraded photo set, built from ../shared/faces: what cheap cameras in dim rooms give.

Each single-face photo of the five enrolled people is turned into several variants: the face
downscaled to 80-150 px, JPEG at quality 30-60, Gaussian blur, dark or back-lit exposure and
sensor noise, in seeded random combinations. The set is built in memory (RGB arrays), never
written into the repository. Used by `python -m bench.face_tools.enrol_gates` to calibrate the
enrolment gates (issue 15).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from kiosk.face.detect import detect_faces

# Single-face photos of the five people of train/ (test/ photos with several faces are left
# out: whose degraded face would it be?).
PHOTOS: dict[str, list[str]] = {
    "obama": ["train/obama/obama.jpg", "train/obama/obama2.jpg", "test/obama1.jpg",
              "test/obama3.jpg"],
    "biden": ["train/biden/biden.jpg", "train/biden/biden2.jpg"],
    "alex_lacamoire": ["train/alex_lacamoire/img1.jpg", "test/alex_lacamoire1.jpg"],
    "kit_harington": ["train/kit_harington/john1.jpeg", "train/kit_harington/john2.jpeg",
                      "test/johnsnow_test1.jpg"],
    "rose_leslie": ["train/rose_leslie/img1.jpg", "train/rose_leslie/img2.jpg"],
}  # fmt: skip
FACE_WIDTHS = (80, 100, 120, 150)
JPEG_QUALITIES = (30, 40, 50, 60)
BLURS = (0.0, 0.8, 1.2, 1.8)  # Gaussian sigma, pixels at the degraded size
EXPOSURES = ("normal", "dark", "backlit")
NOISES = (0.0, 5.0, 10.0)


@dataclass(frozen=True)
class Degraded:
    person: str
    source: str  # photo path relative to the data folder
    recipe: str  # what was done, for the report
    image: NDArray[np.uint8]  # RGB


def degrade(
    image_rgb: NDArray[np.uint8], face_width: int, rng: np.random.Generator
) -> tuple[NDArray[np.uint8], str]:
    """One random degradation of a photo whose face is `face_width` px wide at full size...
    scaled so it becomes one of FACE_WIDTHS."""
    target = int(rng.choice(FACE_WIDTHS))
    quality = int(rng.choice(JPEG_QUALITIES))
    sigma = float(rng.choice(BLURS))
    exposure = str(rng.choice(EXPOSURES))
    noise = float(rng.choice(NOISES))
    factor = min(1.0, target / face_width)
    img = cv2.resize(image_rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    out: NDArray[np.float32] = np.asarray(img, dtype=np.float32)
    if exposure == "dark":  # a dim room: little light, the camera's gain lifts the noise
        out = np.asarray(255 * (out / 255) ** 1.6 * 0.45, dtype=np.float32)
    elif exposure == "backlit":  # a window behind the elder: face dark, background bright
        h, w = out.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        centre = np.exp(-(((xx - w / 2) / (0.35 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2))
        lit = out * (0.45 + 0.15 * centre[:, :, None]) + 150 * (1 - centre[:, :, None])
        out = np.asarray(lit, dtype=np.float32)
    if sigma > 0:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), sigma), dtype=np.float32)
    if noise > 0:
        out = out + rng.normal(0, noise, out.shape).astype(np.float32)
    bgr = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.cvtColor(np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)), cv2.COLOR_BGR2RGB)
    recipe = f"face {target}px q{quality} blur {sigma} {exposure} noise {noise:.0f}"
    return np.asarray(decoded, dtype=np.uint8), recipe


def build(faces: Path, variants: int = 6, seed: int = 15) -> list[Degraded]:
    """`variants` degraded copies of every photo in PHOTOS (plus nothing of the original)."""
    rng = np.random.default_rng(seed)
    out = []
    for person, photos in PHOTOS.items():
        for rel in photos:
            bgr = cv2.imread(str(faces / rel), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read {faces / rel}")
            rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            boxes = detect_faces(rgb, 1.0, 1)
            if not boxes:
                raise ValueError(f"no face in {rel}")
            for _ in range(variants):
                image, recipe = degrade(rgb, boxes[0].width, rng)
                out.append(Degraded(person, rel, recipe, image))
    return out
