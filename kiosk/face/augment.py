"""Template augmentation: extra templates from degraded copies of an enrolment image.

An elder enrols once, in good light, close to the camera or from a photo; afterwards he is
seen by a cheap USB camera in a dim room, sometimes back-lit, at 80-150 px. dlib's encoding
of such a frame drifts from the enrolment encoding (docs/face.md: genuine distances up to
0.53 on the degraded set, where clean ones stay under 0.44). Storing, beside the enrolment
encoding, the encodings of the same image made darker, flatter, softer and smaller puts a
template where those frames land, at no cost per frame (a few more rows in a 1:N product that
takes microseconds). What it costs is measured on the clean set, the crowd and the degraded
set by `python -m bench.face_tools.degraded_frr` (docs/face.md): the nearest impostor comes
0.015 closer on the clean photos, none is accepted.

A fifth view is the unchanged image encoded with dlib's num_jitters = 10 (the mean over
jittered crops), which on its own also lowers the false rejects (docs/face.md).

The views are encoded at enrolment only (14 encodings, ~80 ms each with dlib-bin, ~20 ms
with the BLAS build); they are derived data of the enrolled image, stored as templates with
source `<source>+aug` and not counted towards the per-elder template limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from kiosk.face.detect import FaceBox, Image

AUGMENT_SUFFIX = "+aug"  # appended to the template source: "file+aug", "camera+aug"
SMALL_FACE_PX = 80  # the "small" view scales the face to this width (the pipeline's floor ~64)


@dataclass(frozen=True)
class View:
    name: str
    image: Image  # RGB
    box: FaceBox
    jitters: int = 1  # dlib's num_jitters: the mean encoding of this many jittered crops


def _dark(image: Image) -> Image:
    """A dim room: mid-tones sink (gamma 1.8) and the camera gives half the light."""
    return np.asarray(np.clip(255 * (image / 255.0) ** 1.8 * 0.5, 0, 255), dtype=np.uint8)


def _flat(image: Image) -> Image:
    """Back light or haze: half the contrast, lifted blacks."""
    return np.asarray(np.clip(image * 0.5 + 20, 0, 255), dtype=np.uint8)


def _soft(image: Image) -> Image:
    """Out of focus or a moving head: Gaussian blur of 1.5 px."""
    return np.asarray(cv2.GaussianBlur(image, (0, 0), 1.5), dtype=np.uint8)


def _jpeg(image: Image, quality: int) -> Image:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _scaled(image: Image, box: FaceBox, factor: float) -> tuple[Image, FaceBox]:
    if factor >= 1:
        return image, box
    small = np.asarray(
        cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA),
        dtype=np.uint8,
    )
    h, w = small.shape[:2]
    return small, FaceBox(
        top=max(0, round(box.top * factor)),
        right=min(w, round(box.right * factor)),
        bottom=min(h, round(box.bottom * factor)),
        left=max(0, round(box.left * factor)),
    )


def _far(image: Image, box: FaceBox) -> tuple[Image, FaceBox]:
    """Far from a cheap camera: the face at 80 px, a little soft, JPEG at quality 40."""
    small, small_box = _scaled(image, box, SMALL_FACE_PX / max(box.width, 1))
    soft = np.asarray(cv2.GaussianBlur(small, (0, 0), 0.8), dtype=np.uint8)
    return _jpeg(soft, 40), small_box


_SAME_BOX: dict[str, Callable[[Image], Image]] = {"dark": _dark, "flat": _flat, "soft": _soft}
# dlib's num_jitters for the "jittered" view: the mean of the encodings of this many randomly
# shifted, scaled and mirrored crops of the unchanged image. Enrolment only: a probe frame
# gets one encoding (10 jitters would cost 10 encodings, ~200 ms, far over the frame budget).
ENROL_JITTERS = 10
VIEW_NAMES = (*_SAME_BOX, "far", "jittered")


def augmented_views(image_rgb: Image, box: FaceBox) -> list[View]:
    """The copies of one enrolment image whose encodings become extra templates."""
    views = [View(name, make(image_rgb), box) for name, make in _SAME_BOX.items()]
    far_image, far_box = _far(image_rgb, box)
    views.append(View("far", far_image, far_box))
    views.append(View("jittered", image_rgb, box, ENROL_JITTERS))
    return views


def is_augmented(source: str) -> bool:
    return source.endswith(AUGMENT_SUFFIX)


Encoder = Callable[[Image, FaceBox, int], NDArray[np.float32]]  # (image, box, num_jitters)


def augmented_encodings(
    image_rgb: Image, box: FaceBox, encode: Encoder
) -> list[tuple[str, NDArray[np.float32], int]]:
    """(view name, encoding, face px) for every view; `encode` is the kiosk's encoder,
    kiosk.face.encode.encode_face (a parameter so the bench can count and time it)."""
    return [
        (v.name, encode(v.image, v.box, v.jitters), v.box.size)
        for v in augmented_views(image_rgb, box)
    ]
