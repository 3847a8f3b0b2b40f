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
class Recipe:
    """One combination of degradations: what a given camera, room and distance give."""

    face_width: int  # px of the face after scaling
    quality: int  # JPEG
    sigma: float  # Gaussian blur, px at the degraded size
    exposure: str  # normal | dark | backlit
    noise: float  # grey levels (standard deviation)

    def __str__(self) -> str:
        return (
            f"face {self.face_width}px q{self.quality} blur {self.sigma} {self.exposure} "
            f"noise {self.noise:.0f}"
        )


@dataclass(frozen=True)
class Degraded:
    person: str
    source: str  # photo path relative to the data folder
    recipe: str  # what was done, for the report
    image: NDArray[np.uint8]  # RGB
    params: Recipe | None = None
    face_width: int = 0  # of the source photo at full size


def choose_recipe(rng: np.random.Generator) -> Recipe:
    return Recipe(
        face_width=int(rng.choice(FACE_WIDTHS)),
        quality=int(rng.choice(JPEG_QUALITIES)),
        sigma=float(rng.choice(BLURS)),
        exposure=str(rng.choice(EXPOSURES)),
        noise=float(rng.choice(NOISES)),
    )


def degrade(
    image_rgb: NDArray[np.uint8], face_width: int, rng: np.random.Generator
) -> tuple[NDArray[np.uint8], str]:
    """One random degradation of a photo whose face is `face_width` px wide at full size...
    scaled so it becomes one of FACE_WIDTHS."""
    recipe = choose_recipe(rng)
    return apply_recipe(image_rgb, face_width, recipe, rng), str(recipe)


def apply_recipe(
    image_rgb: NDArray[np.uint8],
    face_width: int,
    recipe: Recipe,
    rng: np.random.Generator,
    shift: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0),
) -> NDArray[np.uint8]:
    """`recipe` applied to the photo; `shift` (dx, dy in px of the full-size photo, roll in
    degrees, scale) moves the photo a little first, as a head moves between camera frames."""
    dx, dy, roll, zoom = shift
    if shift != (0.0, 0.0, 0.0, 1.0):
        h, w = image_rgb.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), roll, zoom)
        matrix[:, 2] += np.array([dx, dy])
        image_rgb = np.asarray(
            cv2.warpAffine(image_rgb, matrix, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT),
            dtype=np.uint8,
        )  # fmt: skip
    factor = min(1.0, recipe.face_width / face_width)
    sigma, exposure, noise, quality = recipe.sigma, recipe.exposure, recipe.noise, recipe.quality
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
    return np.asarray(decoded, dtype=np.uint8)


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
                recipe = choose_recipe(rng)
                image = apply_recipe(rgb, boxes[0].width, recipe, rng)
                out.append(Degraded(person, rel, str(recipe), image, recipe, boxes[0].width))
    return out


def visit_frames(faces: Path, item: Degraded, frames: int, seed: int) -> list[NDArray[np.uint8]]:
    """More camera frames of the same visit as `item`: the same recipe (camera, room,
    distance), each with fresh sensor noise and the head moved a little (a few px, 2° of
    roll, 3 % of scale). Frames of one visit share their hard condition: a dark room stays
    dark, which is why several frames help less than independent tries would."""
    if item.params is None:
        raise ValueError("an item built by `build` is needed (it carries its recipe)")
    bgr = cv2.imread(str(faces / item.source), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {faces / item.source}")
    rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        px = 0.03 * item.face_width
        shift = (float(rng.uniform(-px, px)), float(rng.uniform(-px, px)),
                 float(rng.uniform(-2, 2)), float(rng.uniform(0.97, 1.03)))  # fmt: skip
        out.append(apply_recipe(rgb, item.face_width, item.params, rng, shift))
    return out
