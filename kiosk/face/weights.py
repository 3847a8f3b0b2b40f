"""dlib's model files, each loaded on first use — only the ones the kiosk needs.

`import face_recognition` loads all five models at import, ~150 MB resident, including the
68-point landmark model (100 MB file) that only liveness uses and a CNN detector the kiosk
never runs. Loading through dlib directly keeps a kiosk without liveness ~100 MB smaller
(the DESIGN.md memory budget is 300 MB) and gives the same results: these functions mirror
face_recognition's face_locations / face_encodings / face_landmarks.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import NDArray

Css = tuple[int, int, int, int]  # top, right, bottom, left


@functools.cache
def _dlib() -> Any:
    import dlib

    return dlib


@functools.cache
def _models() -> Any:
    import face_recognition_models

    return face_recognition_models


@functools.cache
def hog_detector() -> Any:
    return _dlib().get_frontal_face_detector()


@functools.cache
def shape_predictor_5() -> Any:
    return _dlib().shape_predictor(_models().pose_predictor_five_point_model_location())


@functools.cache
def shape_predictor_68() -> Any:
    return _dlib().shape_predictor(_models().pose_predictor_model_location())


@functools.cache
def face_encoder() -> Any:
    return _dlib().face_recognition_model_v1(_models().face_recognition_model_location())


def _rect(css: Css) -> Any:
    top, right, bottom, left = css
    return _dlib().rectangle(left, top, right, bottom)


def face_locations(image: NDArray[np.uint8], upsample: int = 0) -> list[Css]:
    """HOG detections as (top, right, bottom, left), clipped to the image."""
    height, width = image.shape[:2]
    return [
        (max(r.top(), 0), min(r.right(), width), min(r.bottom(), height), max(r.left(), 0))
        for r in hog_detector()(image, upsample)
    ]


def face_encoding(image: NDArray[np.uint8], css: Css, num_jitters: int = 1) -> NDArray[np.float64]:
    """The 128-d ResNet descriptor of the face at `css`, aligned with the 5-point model."""
    return face_encoding_and_points(image, css, num_jitters)[0]


def face_encoding_and_points(
    image: NDArray[np.uint8], css: Css, num_jitters: int = 1
) -> tuple[NDArray[np.float64], list[tuple[float, float]]]:
    """The descriptor and the 5 alignment points it was computed from (eye corners, nose):
    parallax liveness reads them at no extra cost."""
    shape = shape_predictor_5()(image, _rect(css))
    points = [(float(pt.x), float(pt.y)) for pt in shape.parts()]
    return np.array(face_encoder().compute_face_descriptor(image, shape, num_jitters)), points


def face_points(image: NDArray[np.uint8], css: Css) -> list[tuple[float, float]]:
    """The 5 alignment points alone (eye corners, base of the nose)."""
    return [(float(pt.x), float(pt.y)) for pt in shape_predictor_5()(image, _rect(css)).parts()]


def face_landmarks(image: NDArray[np.uint8], css: Css) -> dict[str, list[tuple[int, int]]]:
    """The 68 points grouped by feature, with face_recognition's names and order."""
    p = [(pt.x, pt.y) for pt in shape_predictor_68()(image, _rect(css)).parts()]
    return {
        "chin": p[0:17],
        "left_eyebrow": p[17:22],
        "right_eyebrow": p[22:27],
        "nose_bridge": p[27:31],
        "nose_tip": p[31:36],
        "left_eye": p[36:42],
        "right_eye": p[42:48],
        "top_lip": [*p[48:55], p[64], p[63], p[62], p[61], p[60]],
        "bottom_lip": [*p[54:60], p[48], p[60], p[67], p[66], p[65], p[64]],
    }
