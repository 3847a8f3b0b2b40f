"""Face enrolment with consent, behind quality gates.

A template is only as good as the photo it came from, and a bad template either refuses its
elder every day or, worse, matches somebody else. Each gate refuses with a typed reason and a
message the caregiver can act on:

- consent: a reference to the signed consent form is required (no consent, no template);
- the elder must be on the roster; at most `MAX_TEMPLATES` templates per elder;
- exactly one face in the photo (a group photo is refused: whose face would it be?);
- the face at least `MIN_FACE_PX` px (shorter side) after scaling the photo to `MAX_SIDE_PX`:
  down to 64 px the encoding stays within reach of full resolution (docs/face.md);
- facing the camera, from the encoder's own 5 landmarks: eyes level (roll <= `MAX_ROLL_DEG`)
  and the nose between the eyes (|nose offset| <= `MAX_NOSE_OFFSET` inter-ocular distances);
- exposure of the face: mean grey within bounds and not washed out or sunk in black (the
  fraction of clipped pixels);
- only hopeless blur is refused (variance of the Laplacian of the face at 128x128 below
  `MIN_SHARPNESS`). The old absolute floor of 80 refused 61 of 77 degraded photos that the
  recogniser identifies as well as the sharp ones (bench/face_tools/enrol_gates.py,
  docs/face.md): a soft photo from a cheap camera is what the kiosk will see every day;
- no duplicate: a face within `threshold + min_margin` of ANOTHER elder's template is refused.
  One person enrolled under two names is fraud, and two elders that close would make every
  live match between them "ambiguous" anyway.

With `face.augment_templates` (off by default), each stored enrolment image also gets 5
augmented templates (kiosk.face.augment: the same image darker, flatter, softer, smaller, and
encoded with 10 jitters): low-quality camera frames of the elder land nearer to them
(docs/face.md: false rejects on the degraded set 16 -> 10-11 of 48 frames at zero false
accepts). They are derived rows (source `<source>+aug`), not counted towards MAX_TEMPLATES.
Off by default because a photo on a screen is such a low-quality frame too: it then matches
more often and only liveness stands between it and a subsidised meal (one attack run of 8
checked a screen photo in with them on; docs/face.md).

Enrolment detects faces with the detector of check-in (`face.detector`, at enrolment settings)
and stores its name with each template: the worker matches only templates of its own detector,
so after a switch the elders are re-enrolled; the per-elder limit counts that detector's.

Images are read, encoded and dropped: only the encrypted template is stored.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from kiosk.face.augment import AUGMENT_SUFFIX, augmented_encodings
from kiosk.face.detect import FaceBox, FaceDetector, Image, make_detector
from kiosk.face.encode import Points5, encode_face, encode_face_with_points, face_points_5
from kiosk.face.templates import TemplateStore
from models.tables import Elder

if TYPE_CHECKING:
    from kiosk.config import FaceConfig

MAX_SIDE_PX = 1024  # larger photos are scaled down first (speed; faces stay >= 100 px)
# Calibrated on the degraded set (python -m bench.face_tools.enrol_gates, docs/face.md).
MIN_FACE_PX = 64
MIN_SHARPNESS = 10.0  # hopeless blur only; the degraded set's usable photos reach 11-300
MIN_BRIGHTNESS = 30.0  # dark variants at 30-37 were identified as well as lit ones
MAX_BRIGHTNESS = 220.0
MAX_CLIPPED = 0.25  # fraction of face pixels at <= 8 or >= 247 grey: detail lost
MAX_ROLL_DEG = 30.0  # eyes level: dlib aligns roll away up to ~30° (drift 0.03-0.06), at 40° not
MAX_NOSE_OFFSET = 0.25  # nose between the eyes (0.5 would be under one eye)
MAX_TEMPLATES = 5
# Live-camera enrolment keeps the best few frames that differ from each other: several views
# of the same visit (a little turn, another expression) cover what one frame misses. Frames
# closer than MIN_SPREAD add nothing (the same picture twice); on the Hamilton clip frames 0.2 s
# apart differ by 0.25-0.48, a still elder's by far less.
SESSION_KEEP = 3
MIN_SPREAD = 0.08


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
    POSE = "pose"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Enrolled:
    elder_id: str
    template_id: int
    face_px: int
    sharpness: float
    templates: int  # the elder's templates now (augmented views not counted)
    views: int = 0  # augmented templates stored with this one

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


@dataclass(frozen=True)
class SessionEnrolled:
    """Several templates from one live-camera session."""

    elder_id: str
    kept: list[Enrolled]
    frames: int  # frames looked at
    usable: int  # frames that passed the photo gates

    @property
    def templates(self) -> int:
        return self.kept[-1].templates

    @property
    def message(self) -> str:
        return (
            f"已登记 {self.elder_id} 的人脸：从{self.frames}帧中留下{len(self.kept)}张"
            f"（现共{self.templates}张）"
        )


SessionResult = SessionEnrolled | EnrolRefused


@dataclass(frozen=True)
class FrameCandidate:
    """A frame that passed the photo gates, encoded."""

    encoding: NDArray[np.float32]
    quality: FaceQuality
    index: int  # position in the session

    @property
    def score(self) -> float:
        """Bigger, sharper, more frontal is better; each term saturates where the measured
        benefit stops (faces over ~120 px, sharpness over ~100, docs/face.md)."""
        q = self.quality
        return (
            min(q.face_px, 120) / 120
            + min(q.sharpness, 100.0) / 100
            - q.nose_offset / MAX_NOSE_OFFSET * 0.5
            - q.roll_deg / MAX_ROLL_DEG * 0.25
        )


def pick_distinct(
    candidates: list[FrameCandidate], keep: int, min_spread: float, same_person: float
) -> list[FrameCandidate]:
    """The best `keep` candidates, greedily by score, each at least `min_spread` from those
    already kept and within `same_person` of the best one (a passer-by who stepped into a
    frame is not the elder)."""
    ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
    kept: list[FrameCandidate] = []
    for c in ranked:
        if len(kept) >= keep:
            break
        if kept and float(np.linalg.norm(c.encoding - kept[0].encoding)) > same_person:
            continue
        if all(float(np.linalg.norm(c.encoding - k.encoding)) >= min_spread for k in kept):
            kept.append(c)
    return kept


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


def _face_grey(image_rgb: NDArray[np.uint8], box: FaceBox) -> NDArray[np.uint8]:
    """The face scaled to 128x128 grey, so photos of different sizes compare."""
    crop = image_rgb[max(0, box.top) : box.bottom, max(0, box.left) : box.right]
    grey = cv2.resize(
        cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (128, 128), interpolation=cv2.INTER_AREA
    )
    return np.asarray(grey, dtype=np.uint8)


@dataclass(frozen=True)
class FaceQuality:
    """What the photo gates look at, for one face."""

    face_px: int
    sharpness: float  # variance of the Laplacian at 128x128
    brightness: float  # mean grey
    clipped: float  # fraction of pixels <= 8 or >= 247
    roll_deg: float  # tilt of the line through the eye centres
    nose_offset: float  # |nose from the eyes' midpoint along the eye axis|, inter-ocular units

    def as_detail(self) -> str:
        return (
            f"face {self.face_px} px, sharpness {self.sharpness:.0f}, mean {self.brightness:.0f}, "
            f"clipped {self.clipped:.2f}, roll {self.roll_deg:.0f}°, nose {self.nose_offset:.2f}"
        )


def measure_face(image_rgb: NDArray[np.uint8], box: FaceBox, points: Points5) -> FaceQuality:
    """Quality of the face in `box`, with dlib's 5 points (eye corners 0-1 and 2-3, nose 4)."""
    grey = _face_grey(image_rgb, box)
    clipped = float(np.mean((grey <= 8) | (grey >= 247)))
    p = np.asarray(points, dtype=np.float64)
    centre_a, centre_b = (p[0] + p[1]) / 2, (p[2] + p[3]) / 2
    axis = centre_b - centre_a
    interocular = float(np.linalg.norm(axis))
    if interocular > 0:
        roll = math.degrees(math.atan2(abs(float(axis[1])), abs(float(axis[0]))))
        nose = abs(float((p[4] - (centre_a + centre_b) / 2) @ axis)) / interocular**2
    else:  # degenerate landmarks: judge as not facing the camera
        roll, nose = 90.0, float("inf")
    return FaceQuality(
        face_px=box.size,
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        brightness=float(grey.mean()),
        clipped=clipped,
        roll_deg=roll,
        nose_offset=nose,
    )


def judge_face(
    q: FaceQuality, min_face_px: int = MIN_FACE_PX, min_brightness: float = MIN_BRIGHTNESS
) -> EnrolRefused | None:
    """The size, exposure, blur and pose gates on a measured face; None when it passes.
    Also used by bench/face_tools/enrol_gates.py, so the bench measures these very gates."""
    detail = q.as_detail()
    if q.face_px < min_face_px:
        return EnrolRefused(
            "", EnrolRefusal.FACE_TOO_SMALL, "人脸太小，请靠近一些重新拍照",
            f"face {q.face_px} px < {min_face_px} px",
        )  # fmt: skip
    if q.brightness < min_brightness or (q.clipped > MAX_CLIPPED and q.brightness < 128):
        return EnrolRefused("", EnrolRefusal.TOO_DARK, "照片太暗，请在明亮处重新拍照", detail)
    if q.brightness > MAX_BRIGHTNESS or q.clipped > MAX_CLIPPED:
        return EnrolRefused("", EnrolRefusal.TOO_BRIGHT, "照片太亮，请避开强光重新拍照", detail)
    if q.sharpness < MIN_SHARPNESS:
        return EnrolRefused("", EnrolRefusal.BLURRED, "照片模糊，请重新拍照", detail)
    if q.roll_deg > MAX_ROLL_DEG or q.nose_offset > MAX_NOSE_OFFSET:
        return EnrolRefused("", EnrolRefusal.POSE, "请老人正对摄像头、头摆正，再拍一张", detail)
    return None


class _Refuse(Exception):  # noqa: N818 (a control-flow signal inside Enroller, never raised out)
    def __init__(self, reason: EnrolRefusal, message: str, detail: str = "") -> None:
        self.reason, self.message, self.detail = reason, message, detail


class Enroller:
    def __init__(
        self,
        templates: TemplateStore,
        threshold: float,
        min_margin: float,
        augment: bool = False,
        detector: str = "hog",
    ) -> None:
        self.templates = templates
        self.duplicate_distance = threshold + min_margin
        self.augment = augment  # store the augmented views of each image (kiosk.face.augment)
        # face.detector at enrolment settings (photos up to MAX_SIDE_PX, faces from 64 px).
        self.detector: FaceDetector = make_detector(detector, enrol=True)
        self.min_face_px = self.detector.min_size(MIN_FACE_PX)  # MIN_FACE_PX: HOG boxes

    @classmethod
    def from_config(cls, templates: TemplateStore, face: FaceConfig) -> Enroller:
        """The enroller the config's `face` section describes (touchscreen and CLI alike)."""
        return cls(
            templates,
            face.threshold,
            face.min_margin,
            augment=face.augment_templates,
            detector=face.detector,
        )

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
            box, quality = self._check_photo(image)
            encoding, _ = encode_face_with_points(image, box)
            self._check_duplicate(elder_id, encoding)
        except _Refuse as refusal:
            return EnrolRefused(elder_id, refusal.reason, refusal.message, refusal.detail)
        template_id, views = self._store(
            elder_id, image, box, encoding, quality, consent_ref, now, source
        )
        return Enrolled(elder_id, template_id, box.size, quality.sharpness, existing + 1, views)

    def check_photo(self, image_rgb: NDArray[np.uint8]) -> EnrolRefused | None:
        """The photo gates alone, storing nothing (the live preview's quality hint): None when
        this photo would pass them."""
        try:
            self._check_photo(fit_photo(image_rgb))
        except _Refuse as refusal:
            return EnrolRefused("", refusal.reason, refusal.message, refusal.detail)
        return None

    def enrol_frames(
        self,
        elder_id: str,
        frames: list[NDArray[np.uint8]],
        consent_ref: str,
        now: dt.datetime,
        source: str = "camera",
        keep: int = SESSION_KEEP,
        min_spread: float = MIN_SPREAD,
    ) -> SessionResult:
        """Enrol from several camera frames of one session (RGB): every frame through the
        photo gates, the best `keep` distinct ones kept (at most up to MAX_TEMPLATES). Any kept
        frame within the duplicate distance of ANOTHER elder refuses the whole session."""
        try:
            existing = self._check_request(elder_id, consent_ref)
            candidates: list[FrameCandidate] = []
            shots: dict[int, tuple[Image, FaceBox]] = {}
            refusals: dict[EnrolRefusal, list[_Refuse]] = {}
            for index, frame in enumerate(frames):
                image = fit_photo(frame)
                try:
                    box, _ = self._check_photo(image)
                except _Refuse as refusal:
                    refusals.setdefault(refusal.reason, []).append(refusal)
                    continue
                encoding, points = encode_face_with_points(image, box)
                candidates.append(FrameCandidate(encoding, measure_face(image, box, points), index))
                shots[index] = (image, box)
            if not candidates:
                if not refusals:
                    raise _Refuse(EnrolRefusal.UNREADABLE, "摄像头没有画面")
                # the commonest cause is the most useful hint for the caregiver
                raise max(refusals.values(), key=len)[0]
            room = MAX_TEMPLATES - existing
            kept = pick_distinct(candidates, min(keep, room), min_spread, self.duplicate_distance)
            for c in kept:
                self._check_duplicate(elder_id, c.encoding)
        except _Refuse as refusal:
            return EnrolRefused(elder_id, refusal.reason, refusal.message, refusal.detail)
        enrolled = []
        for n, c in enumerate(kept, start=1):
            image, box = shots[c.index]
            template_id, views = self._store(
                elder_id, image, box, c.encoding, c.quality, consent_ref, now, source
            )
            enrolled.append(
                Enrolled(
                    elder_id,
                    template_id,
                    c.quality.face_px,
                    c.quality.sharpness,
                    existing + n,
                    views,
                )
            )
        return SessionEnrolled(elder_id, enrolled, len(frames), len(candidates))

    def _store(
        self,
        elder_id: str,
        image: Image,
        box: FaceBox,
        encoding: NDArray[np.float32],
        quality: FaceQuality,
        consent_ref: str,
        now: dt.datetime,
        source: str,
    ) -> tuple[int, int]:
        """The template, then its augmented views (when `self.augment`); returns the
        template's id and the number of views stored."""
        template_id = self.templates.add(
            elder_id,
            encoding,
            quality=quality.sharpness,
            face_px=box.size,
            consent_ref=consent_ref.strip(),
            at=now,
            source=source,
            detector=self.detector.name,
        )
        if not self.augment:
            return template_id, 0
        views = augmented_encodings(image, box, encode_face)
        for _, view, face_px in views:
            self.templates.add(
                elder_id,
                view,
                quality=quality.sharpness,
                face_px=face_px,
                consent_ref=consent_ref.strip(),
                at=now,
                source=source + AUGMENT_SUFFIX,
                detector=self.detector.name,
            )
        return template_id, len(views)

    def _check_request(self, elder_id: str, consent_ref: str) -> int:
        """Consent, roster, template count; returns the elder's template count."""
        if not consent_ref.strip():
            raise _Refuse(EnrolRefusal.NO_CONSENT, "缺少知情同意书编号，不能登记人脸")
        with self.templates.store.read() as session:
            if session.get(Elder, elder_id) is None:
                raise _Refuse(EnrolRefusal.UNKNOWN_ELDER, f"花名册中没有 {elder_id}")
        # Templates of another detector are not matched (a switch means re-enrolment): they do
        # not count towards the limit either.
        existing = self.templates.count(elder_id, augmented=False, detector=self.detector.name)
        if existing >= MAX_TEMPLATES:
            raise _Refuse(EnrolRefusal.TOO_MANY_TEMPLATES, f"已有{existing}张人脸模板，不能再登记")
        return existing

    def _check_photo(self, image: NDArray[np.uint8]) -> tuple[FaceBox, FaceQuality]:
        """One face, big enough, well exposed, not hopelessly blurred, facing the camera."""
        boxes = self.detector.detect(image)  # HOG at enrolment settings: faces from ~40 px
        if not boxes:
            raise _Refuse(EnrolRefusal.NO_FACE, "照片中没有找到人脸")
        if len(boxes) > 1:
            raise _Refuse(
                EnrolRefusal.SEVERAL_FACES,
                f"照片中有{len(boxes)}张人脸，请只拍老人一人",
                f"{len(boxes)} faces",
            )
        box = boxes[0]
        if box.size < self.min_face_px:  # before the landmarks: too few pixels to place them
            raise _Refuse(
                EnrolRefusal.FACE_TOO_SMALL,
                "人脸太小，请靠近一些重新拍照",
                f"face {box.size} px < {self.min_face_px} px",
            )
        quality = measure_face(image, box, face_points_5(image, box))
        refusal = judge_face(quality, self.min_face_px)
        if refusal is not None:
            raise _Refuse(refusal.reason, refusal.message, refusal.detail)
        return box, quality

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
