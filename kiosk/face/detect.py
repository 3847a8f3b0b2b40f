"""HOG face detection on a downscaled copy of the frame.

dlib's HOG detector costs roughly in proportion to the pixel count, and a face at a kiosk fills
a good part of the frame, so detecting on a half-size copy is ~4x cheaper and loses nothing we
need: boxes are scaled back to full-resolution coordinates for encoding.

dlib and its model files are loaded lazily (kiosk.face.weights), so the rest of the face package
(matcher, motion gate, liveness) imports without dlib.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # H x W x 3, RGB unless a name says BGR


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


def detect_faces(image_rgb: Image, scale: float = 0.5, upsample: int = 0) -> list[FaceBox]:
    """All HOG detections, largest first, in full-resolution coordinates.

    With `upsample=0` the HOG window finds faces of about 80 px and larger in the *scaled*
    image, i.e. 80/scale px in the frame (160 px at scale 0.5).
    """
    from kiosk.face.weights import face_locations

    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    height, width = image_rgb.shape[:2]
    small = (
        image_rgb
        if scale == 1
        else np.asarray(  # narrows OpenCV's generic Mat type to the 8-bit image (no copy)
            cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
    )
    boxes = []
    for top, right, bottom, left in face_locations(small, upsample):
        box = FaceBox(
            top=max(0, round(top / scale)),
            right=min(width, round(right / scale)),
            bottom=min(height, round(bottom / scale)),
            left=max(0, round(left / scale)),
        )
        if box.width > 0 and box.height > 0:
            boxes.append(box)
    boxes.sort(key=lambda b: b.area, reverse=True)
    return boxes


def choose_face(boxes: list[FaceBox], min_face_px: int) -> FaceBox | None:
    """The largest face if it is at least `min_face_px`; small faces encode poorly and are
    usually people passing behind the elder, not the one checking in."""
    if not boxes:
        return None
    largest = max(boxes, key=lambda b: b.area)
    return largest if largest.size >= min_face_px else None
