"""Face detection on a downscaled copy of the frame: dlib's HOG (default) or YuNet.

`face.detector` chooses the detector (`make_detector`); both give `FaceBox`es in
full-resolution coordinates, largest first, and the minimum-face-size rule (`choose_face`)
applies to either. YuNet lives in kiosk.face.detect_yunet (optional package `yuface`).
Templates remember the detector that made them: dlib's alignment from a YuNet box gives a
slightly different encoding than from a HOG box (docs/face.md), so a switch means re-enrolment.

dlib's HOG detector costs roughly in proportion to the pixel count, and a face at a kiosk fills
a good part of the frame, so detecting on a half-size copy is ~4x cheaper and loses nothing we
need: boxes are scaled back to full-resolution coordinates for encoding.

dlib and its model files are loaded lazily (kiosk.face.weights), so the rest of the face package
(matcher, motion gate, liveness) imports without dlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # H x W x 3, RGB unless a name says BGR
DetectorName = Literal["hog", "yunet"]
DETECTORS: tuple[DetectorName, ...] = ("hog", "yunet")


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in full-resolution pixel coordinates (face_recognition's css order)."""

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> int:
        """The smaller side: what the minimum-face-size rule compares against."""
        return min(self.width, self.height)

    @property
    def area(self) -> int:
        return self.width * self.height

    def css(self) -> tuple[int, int, int, int]:
        return (self.top, self.right, self.bottom, self.left)


def check_image(image: object) -> Image:
    """The image itself if it is an H x W x 3 uint8 array; a ValueError that says what it is
    otherwise (dlib and libfacedetection would fail with less helpful errors, or crash)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"face detection needs an HxWx3 uint8 image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(
            f"face detection needs an HxWx3 uint8 image, got shape {image.shape} {image.dtype}"
        )
    return image


def downscale(image: Image, scale: float) -> Image:
    """A copy scaled by `scale` (0 < scale <= 1; the image itself at 1)."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if scale == 1:
        return image
    return np.asarray(  # narrows OpenCV's generic Mat type to the 8-bit image (no copy)
        cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )


def scaled_box(
    top: float, right: float, bottom: float, left: float, scale: float, height: int, width: int
) -> FaceBox | None:
    """A box found on a copy scaled by `scale`, in full-resolution coordinates clipped to the
    image; None when nothing of it is inside."""
    box = FaceBox(
        top=max(0, round(top / scale)),
        right=min(width, round(right / scale)),
        bottom=min(height, round(bottom / scale)),
        left=max(0, round(left / scale)),
    )
    return box if box.width > 0 and box.height > 0 else None


def detect_faces(image_rgb: Image, scale: float = 0.5, upsample: int = 0) -> list[FaceBox]:
    """All HOG detections, largest first, in full-resolution coordinates.

    With `upsample=0` the HOG window finds faces of about 80 px and larger in the *scaled*
    image, i.e. 80/scale px in the frame (160 px at scale 0.5).
    """
    from kiosk.face.weights import face_locations

    check_image(image_rgb)
    height, width = image_rgb.shape[:2]
    small = downscale(image_rgb, scale)
    boxes = []
    for top, right, bottom, left in face_locations(small, upsample):
        box = scaled_box(top, right, bottom, left, scale, height, width)
        if box is not None:
            boxes.append(box)
    boxes.sort(key=lambda b: b.area, reverse=True)
    return boxes


class FaceDetector(Protocol):
    """What the pipeline, the worker, card evidence and enrolment need of a detector."""

    @property
    def name(self) -> DetectorName: ...

    def detect(self, image_rgb: Image) -> list[FaceBox]:
        """Every face, largest first, in full-resolution coordinates (RGB input)."""
        ...

    def min_size(self, min_face_px: int) -> int:
        """The floor for this detector's boxes: `face.min_face_px` is measured on HOG boxes."""
        ...


# The kiosk's HOG settings (face.detect_scale; why: kiosk/face/pipeline.py).
DEFAULT_DETECT_SCALE = 1.0
DEFAULT_UPSAMPLE = 0


@dataclass(frozen=True)
class HogDetector:
    """dlib's HOG on a copy scaled by `scale` (kiosk: full size, no upsampling; enrolment:
    full size with one upsampling, which finds faces down to ~40 px).

    With `coarse_scale` (smaller than `scale`; off by default) HOG looks at that smaller copy
    first and at `scale` only when it finds no face there: an elder standing at the kiosk (a
    face of ~100 px and more) costs the small copy's ~0.56 of the time, a small face in a
    dim room is still found, at 1.56 times the cost, on the second look. For a terminal too
    slow for the frame budget at full scale; its cost in refused visits: docs/face.md."""

    scale: float = DEFAULT_DETECT_SCALE
    upsample: int = DEFAULT_UPSAMPLE
    coarse_scale: float | None = None
    name: ClassVar[DetectorName] = "hog"

    def detect(self, image_rgb: Image) -> list[FaceBox]:
        if self.coarse_scale is not None and self.coarse_scale < self.scale:
            boxes = detect_faces(image_rgb, self.coarse_scale, self.upsample)
            if boxes:
                return boxes
        return detect_faces(image_rgb, self.scale, self.upsample)

    def min_size(self, min_face_px: int) -> int:
        return min_face_px


def make_detector(
    name: str,
    scale: float | None = None,
    *,
    enrol: bool = False,
    coarse_scale: float | None = None,
) -> FaceDetector:
    """The detector `face.detector` names, at the kiosk's settings, or at enrolment's (photos
    up to 1024 px with faces from 64 px) when `enrol`. `scale` overrides the kiosk scale,
    `coarse_scale` HOG's first look (None: none). Raises DetectorUnavailableError for
    `yunet` where its package is not installed."""
    if name == "hog":
        if enrol:
            return HogDetector(scale=1.0, upsample=1)
        return HogDetector(
            scale=DEFAULT_DETECT_SCALE if scale is None else scale, coarse_scale=coarse_scale
        )
    if name == "yunet":
        from kiosk.face.detect_yunet import ENROL_MAX_SIDE, YunetDetector, load_yunet

        load_yunet()  # fail here, with the reason, rather than at the first frame
        if enrol:
            return YunetDetector(scale=1.0, max_side=ENROL_MAX_SIDE)
        return YunetDetector() if scale is None else YunetDetector(scale=scale)
    raise ValueError(f"unknown face detector {name!r} (expected one of {', '.join(DETECTORS)})")


def choose_face(boxes: list[FaceBox], min_face_px: int) -> FaceBox | None:
    """The largest face if it is at least `min_face_px`; small faces encode poorly and are
    usually people passing behind the elder, not the one checking in."""
    if not boxes:
        return None
    largest = max(boxes, key=lambda b: b.area)
    return largest if largest.size >= min_face_px else None
