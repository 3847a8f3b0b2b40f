"""128-d face encodings and 68-point landmarks at full resolution.

Encoding uses face_recognition's "small" model: alignment from the 5-point landmark predictor
(public domain, see docs/face.md) and dlib's ResNet. The 68-point predictor is only needed by
liveness and carries a non-commercial licence restriction, so it is a separate call.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from kiosk.face.detect import FaceBox, Image

Landmarks = dict[str, list[tuple[int, int]]]
Points5 = list[tuple[float, float]]


def encode_face(image_rgb: Image, box: FaceBox, num_jitters: int = 1) -> NDArray[np.float32]:
    """The 128-d encoding of the face in `box` (full-resolution image, RGB)."""
    from kiosk.face.weights import face_encoding

    return np.asarray(face_encoding(image_rgb, box.css(), num_jitters), dtype=np.float32)


def encode_face_with_points(
    image_rgb: Image, box: FaceBox, num_jitters: int = 1
) -> tuple[NDArray[np.float32], Points5]:
    """The encoding and the 5 alignment points (two corners of each eye, the nose)."""
    from kiosk.face.weights import face_encoding_and_points

    encoding, points = face_encoding_and_points(image_rgb, box.css(), num_jitters)
    return np.asarray(encoding, dtype=np.float32), points


def face_points_5(image_rgb: Image, box: FaceBox) -> Points5:
    """Only the 5 points (~1 ms, no encoding): for liveness frames between full analyses."""
    from kiosk.face.weights import face_points

    return face_points(image_rgb, box.css())


def face_landmarks_68(image_rgb: Image, box: FaceBox) -> Landmarks:
    """The 68-point landmarks of one face, grouped as face_recognition names them
    (left_eye, right_eye, nose_tip, nose_bridge, chin, ...)."""
    from kiosk.face.weights import face_landmarks

    return face_landmarks(image_rgb, box.css())
