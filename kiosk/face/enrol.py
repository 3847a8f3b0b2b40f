"""Face enrolment with consent, behind quality gates.

A template is only as good as the photo it came from, and a bad template either refuses its
elder every day or, worse, matches somebody else. Each gate refuses with a typed reason and a
message the caregiver can act on:

- consent: a reference to the signed consent form is required (no consent, no template);
- the elder must be on the roster; at most `MAX_TEMPLATES` templates per elder;
- exactly one face in the photo (a group photo is refused: whose face would it be?);
- the face at least `MIN_FACE_PX` px (shorter side) after scaling the photo to `MAX_SIDE_PX`;
- sharp: variance of the Laplacian of the face scaled to 128x128 >= `MIN_SHARPNESS`
  (measured on ../shared/faces: enrolment photos 176-1415, the same photos blurred with a
  Gaussian of sigma 3: 5-53);
- not too dark or bright (mean grey of the face);
- no duplicate: a face within `threshold + min_margin` of ANOTHER elder's template is refused.
  One person enrolled under two names is fraud, and two elders that close would make every
  live match between them "ambiguous" anyway.

Images are read, encoded and dropped: only the encrypted template is stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from kiosk.face.detect import FaceBox, detect_faces
from kiosk.face.encode import encode_face
from kiosk.face.templates import TemplateStore
from models.tables import Elder

MAX_SIDE_PX = 1024  # larger photos are scaled down first (speed; faces stay >= 100 px)
MIN_FACE_PX = 100
MIN_SHARPNESS = 80.0
MIN_BRIGHTNESS = 40.0
MAX_BRIGHTNESS = 220.0
MAX_TEMPLATES = 5


class EnrolRefusal(StrEnum):
    NO_CONSENT = "no_consent"
    UNKNOWN_ELDER = "unknown_elder"
    TOO_MANY_TEMPLATES = "too_many_templates"
    UNREADABLE = "unreadable"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    FACE_TOO_SMALL = "face_too_small"
    BLURRED = "blurred"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Enrolled:
    elder_id: str
    template_id: int
    face_px: int
    sharpness: float
    templates: int  # the elder's templates now

    @property
    def message(self) -> str:
        return (
            f"已登记 {self.elder_id} 的人脸（第{self.templates}张，"
            f"人脸 {self.face_px} 像素，清晰度 {self.sharpness:.0f}）"
        )


@dataclass(frozen=True)
class EnrolRefused:
    elder_id: str
    reason: EnrolRefusal
    message: str  # Chinese, for the caregiver
    detail: str = ""  # for the technician (numbers, the other elder)


EnrolResult = Enrolled | EnrolRefused


def load_image(path: Path) -> NDArray[np.uint8] | None:
    """RGB, or None when the file is not a readable image."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def fit_photo(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    scale = MAX_SIDE_PX / max(image.shape[:2])
    if scale >= 1:
        return image
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)  # OpenCV's stubs say Mat; it is 8-bit


def face_quality(image_rgb: NDArray[np.uint8], box: FaceBox) -> tuple[float, float]:
    """(sharpness, brightness) of the face: variance of the Laplacian and mean grey of the face
    scaled to 128x128, so photos of different sizes compare."""
    crop = image_rgb[box.top : box.bottom, box.left : box.right]
    grey = cv2.resize(
        cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (128, 128), interpolation=cv2.INTER_AREA
    )
    return float(cv2.Laplacian(grey, cv2.CV_64F).var()), float(grey.mean())


class _Refuse(Exception):  # noqa: N818 (a control-flow signal inside Enroller, never raised out)
    def __init__(self, reason: EnrolRefusal, message: str, detail: str = "") -> None:
        self.reason, self.message, self.detail = reason, message, detail


class Enroller:
    def __init__(self, templates: TemplateStore, threshold: float, min_margin: float) -> None:
        self.templates = templates
        self.duplicate_distance = threshold + min_margin

    def enrol(
        self,
        elder_id: str,
        image_rgb: NDArray[np.uint8] | None,
        consent_ref: str,
        now: dt.datetime,
        source: str = "file",
    ) -> EnrolResult:
        """Run every gate; store the encrypted template only if all pass."""
        try:
            existing = self._check_request(elder_id, consent_ref)
            if image_rgb is None:
                raise _Refuse(EnrolRefusal.UNREADABLE, "无法读取照片")
            image = fit_photo(image_rgb)
            box, sharpness = self._check_photo(image)
            encoding = encode_face(image, box)
            self._check_duplicate(elder_id, encoding)
        except _Refuse as refusal:
            return EnrolRefused(elder_id, refusal.reason, refusal.message, refusal.detail)
        template_id = self.templates.add(
            elder_id,
            encoding,
            quality=sharpness,
            face_px=box.size,
            consent_ref=consent_ref.strip(),
            at=now,
            source=source,
        )
        return Enrolled(elder_id, template_id, box.size, sharpness, existing + 1)

    def check_photo(self, image_rgb: NDArray[np.uint8]) -> EnrolRefused | None:
        """The photo gates alone, storing nothing (the live preview's quality hint): None when
        this photo would pass them."""
        try:
            self._check_photo(fit_photo(image_rgb))
        except _Refuse as refusal:
            return EnrolRefused("", refusal.reason, refusal.message, refusal.detail)
        return None

    def _check_request(self, elder_id: str, consent_ref: str) -> int:
        """Consent, roster, template count; returns the elder's template count."""
        if not consent_ref.strip():
            raise _Refuse(EnrolRefusal.NO_CONSENT, "缺少知情同意书编号，不能登记人脸")
        with self.templates.store.read() as session:
            if session.get(Elder, elder_id) is None:
                raise _Refuse(EnrolRefusal.UNKNOWN_ELDER, f"花名册中没有 {elder_id}")
        existing = self.templates.count(elder_id)
        if existing >= MAX_TEMPLATES:
            raise _Refuse(EnrolRefusal.TOO_MANY_TEMPLATES, f"已有{existing}张人脸模板，不能再登记")
        return existing

    def _check_photo(self, image: NDArray[np.uint8]) -> tuple[FaceBox, float]:
        """One face, big, sharp, well lit; returns its box and sharpness."""
        boxes = detect_faces(image, scale=1.0, upsample=1)  # finds faces down to ~40 px
        if not boxes:
            raise _Refuse(EnrolRefusal.NO_FACE, "照片中没有找到人脸")
        if len(boxes) > 1:
            raise _Refuse(
                EnrolRefusal.SEVERAL_FACES,
                f"照片中有{len(boxes)}张人脸，请只拍老人一人",
                f"{len(boxes)} faces",
            )
        box = boxes[0]
        if box.size < MIN_FACE_PX:
            raise _Refuse(
                EnrolRefusal.FACE_TOO_SMALL,
                "人脸太小，请靠近一些重新拍照",
                f"face {box.size} px < {MIN_FACE_PX} px",
            )
        sharpness, brightness = face_quality(image, box)
        if sharpness < MIN_SHARPNESS:
            raise _Refuse(
                EnrolRefusal.BLURRED,
                "照片模糊，请重新拍照",
                f"sharpness {sharpness:.0f} < {MIN_SHARPNESS:.0f}",
            )
        if brightness < MIN_BRIGHTNESS:
            raise _Refuse(
                EnrolRefusal.TOO_DARK, "照片太暗，请在明亮处重新拍照", f"{brightness:.0f}"
            )
        if brightness > MAX_BRIGHTNESS:
            raise _Refuse(
                EnrolRefusal.TOO_BRIGHT, "照片太亮，请避开强光重新拍照", f"{brightness:.0f}"
            )
        return box, sharpness

    def _check_duplicate(self, elder_id: str, encoding: NDArray[np.float32]) -> None:
        other, distance = self._nearest_other(elder_id, encoding)
        if other is not None and distance < self.duplicate_distance:
            raise _Refuse(
                EnrolRefusal.DUPLICATE,
                f"这张脸已登记在 {other} 名下，不能重复登记",
                f"distance {distance:.3f} to {other} < {self.duplicate_distance:.2f}",
            )

    def _nearest_other(
        self, elder_id: str, encoding: NDArray[np.float32]
    ) -> tuple[str | None, float]:
        others = [t for t in self.templates.all() if t.elder_id != elder_id]
        if not others:
            return None, float("inf")
        distances = np.linalg.norm(np.stack([t.encoding for t in others]) - encoding, axis=1)
        best = int(np.argmin(distances))
        return others[best].elder_id, float(distances[best])
