"""YuNet face detection through libfacedetection (PyPI `yuface`, BSD-3, weights compiled in).

`face.detector: yunet`. On the kiosk's 640x480 frames at input scale 0.5 it is about twice as
fast as HOG at 0.75 and finds faces HOG misses (small, dark, soft ones): docs/face.md.
The package ships CPython 3.11 x86-64 Linux wheels only; elsewhere it is not installed and
`yunet_unavailable()` says why (the config refuses `yunet` with that reason).

libfacedetection parallelises with OpenMP. On a 2-core terminal its threads fight the camera
grabber, the matcher and the check-in service for the cores (measured: 1.6 s p50 per frame
under load instead of ~10 ms), so it runs single-threaded: its bundled libgomp reads
OMP_NUM_THREADS once, when the library is loaded, and `load_yunet` sets it for that moment.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import sys
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from kiosk.face.detect import DetectorName, FaceBox, Image, check_image, downscale, scaled_box

# Kiosk: a 640x480 frame at 0.5 (320x240): YuNet finds faces down to ~10 px in what it sees,
# i.e. ~20 px in the frame, far below the 64 px floor; at full size it costs 3-4x as much.
DEFAULT_SCALE = 0.5
# Enrolment photos (up to 1024 px after fit_photo) are shrunk to this longer side: a 64 px face
# of a 1024 px photo is still 40 px there; libfacedetection warns above 960 px.
ENROL_MAX_SIDE = 640
MIN_CONFIDENCE = 0.5  # libfacedetection's own default (its scores are 0-100)
# YuNet's box is narrower than HOG's for the same face (shorter side 0.84-1.05 of HOG's, median
# 0.91, on the 14 single-face photos of ../shared/faces), and face.min_face_px was calibrated
# on HOG boxes: the floor scales by the low end, so no face HOG would keep is refused. At 64 px
# without it, 17 of the 78 degraded faces YuNet found at kiosk scale fell under the floor.
BOX_SCALE = 0.85
THREADS = 1
_load_lock = threading.Lock()


class DetectorUnavailableError(RuntimeError):
    """The configured detector cannot run on this machine (its package is missing)."""


def yunet_unavailable() -> str | None:
    """Why `face.detector: yunet` cannot work here, or None when it can (no import)."""
    if importlib.util.find_spec("yuface") is not None:
        return None
    return (
        "face.detector yunet needs the yuface package, which PyPI has only for CPython 3.11 on "
        f"x86-64 Linux (this is {platform.machine()}, Python {sys.version_info.major}."
        f"{sys.version_info.minor}, package not installed): use face.detector hog"
    )


@functools.cache
def load_yunet() -> Any:
    """libfacedetection's detect function, loaded once with OMP_NUM_THREADS=THREADS."""
    reason = yunet_unavailable()
    if reason is not None:
        raise DetectorUnavailableError(reason)
    with _load_lock:
        if "yuface.yuface" in sys.modules:  # loaded elsewhere first: its thread count stands
            return sys.modules["yuface.yuface"].detect
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(THREADS)
        try:
            return importlib.import_module("yuface.yuface").detect
        finally:  # libgomp has read it; leave the process environment as it was
            if previous is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = previous


@dataclass(frozen=True)
class YunetDetector:
    """YuNet on a copy scaled by `scale`, further shrunk so its longer side is at most
    `max_side` (enrolment photos); boxes in full-resolution coordinates, largest first."""

    scale: float = DEFAULT_SCALE
    max_side: int | None = None
    min_confidence: float = MIN_CONFIDENCE
    name: ClassVar[DetectorName] = "yunet"

    def detect(self, image_rgb: Image) -> list[FaceBox]:
        detect = load_yunet()
        check_image(image_rgb)
        height, width = image_rgb.shape[:2]
        scale = self.scale
        if self.max_side is not None:
            scale = min(scale, self.max_side / max(height, width))
        small = downscale(image_rgb, scale)
        # YuNet was trained on OpenCV's BGR; contiguous, as the C++ side reads the buffer.
        bgr = np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        # Rows: score (0-100), x, y, w, h, 5 landmarks (x, y), one spare column; int16, and
        # x/y can be negative for a face cut by the frame edge.
        rows = np.asarray(detect(bgr), dtype=np.int64).reshape(-1, 16)
        boxes = []
        for row in rows[rows[:, 0] > self.min_confidence * 100]:
            x, y, w, h = (int(v) for v in row[1:5])
            box = scaled_box(y, x + w, y + h, x, scale, height, width)
            if box is not None:
                boxes.append(box)
        boxes.sort(key=lambda b: b.area, reverse=True)
        return boxes

    def min_size(self, min_face_px: int) -> int:
        return round(min_face_px * BOX_SCALE)
