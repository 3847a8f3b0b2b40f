"""Template augmentation (kiosk.face.augment): what it stores, that a dim camera frame of an
enrolled elder now matches, and that strangers, dim or not, still match nobody.

Real dlib on ../shared/faces (skipped where absent); the figures behind it come from
`python -m bench.face_tools.degraded_frr` (docs/face.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import select

from kiosk.face.augment import VIEW_NAMES, augmented_views, is_augmented
from kiosk.face.detect import FaceBox, detect_faces
from kiosk.face.encode import encode_face
from kiosk.face.enrol import MAX_TEMPLATES, Enrolled, Enroller, EnrolRefusal, fit_photo, load_image
from kiosk.face.matcher import FaceMatcher, Match
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.ops.storage import open_store
from models.roster import apply_rows
from models.tables import FaceTemplate
from tests.support.roster import TZ, elder_row

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=TZ)
pytestmark = pytest.mark.xdist_group("face_augment")
ENROL = {  # one photo each, as a caregiver would take it
    "E0001": "train/obama/obama.jpg",
    "E0002": "train/biden/biden.jpg",
    "E0003": "train/kit_harington/john1.jpeg",
    "E0004": "train/rose_leslie/img1.jpg",
}


def dim_camera_frame(image: NDArray[np.uint8], face_px: int) -> NDArray[np.uint8]:
    """What a cheap camera in a dim room gives: the face at `face_px`, dark (gamma 1.6 at
    45 % of the light), a little soft, JPEG at quality 40."""
    box = detect_faces(image, 1.0, 1)[0]
    factor = min(1.0, face_px / box.width)
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    dark = cv2.GaussianBlur(255 * (small.astype(np.float32) / 255) ** 1.6 * 0.45, (0, 0), 1.0)
    bgr = np.ascontiguousarray(np.clip(dark, 0, 255).astype(np.uint8)[:, :, ::-1])
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.ascontiguousarray(decoded[:, :, ::-1])


def encodings_of(image: NDArray[np.uint8]) -> list[NDArray[np.float32]]:
    """Every face, found and encoded as the enrolment and the probes of the bench do."""
    image = fit_photo(image)
    return [encode_face(image, box) for box in detect_faces(image, 1.0, 1)]


def roster(faces: Path, tmp_path: Path, augment: bool) -> tuple[FaceMatcher, TemplateStore]:
    data = tmp_path / ("aug" if augment else "plain")
    store = open_store(data)
    apply_rows(store, [elder_row(n) for n in range(1, 6)], NOW, source="test")
    templates = TemplateStore(store, FaceKey.load(data))
    enroller = Enroller(templates, 0.45, 0.08, augment=augment)
    for elder, photo in ENROL.items():
        result = enroller.enrol(elder, load_image(faces / photo), "同意书-1", NOW)
        assert isinstance(result, Enrolled), result
        assert result.views == (len(VIEW_NAMES) if augment else 0)
    matcher = FaceMatcher(0.45, 0.08)
    matcher.set_roster((t.elder_id, t.encoding) for t in templates.all())
    return matcher, templates


def test_views_are_darker_flatter_softer_and_smaller() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(60, 200, (400, 400, 3), dtype=np.uint8)
    box = FaceBox(top=100, right=300, bottom=300, left=100)  # 200 px
    views = {v.name: v for v in augmented_views(image, box)}
    assert tuple(views) == VIEW_NAMES == ("dark", "flat", "soft", "far", "jittered")
    assert views["dark"].image.mean() < 0.6 * image.mean()
    assert views["flat"].image.std() < 0.6 * image.std()
    assert views["soft"].image.std() < image.std()
    assert views["far"].box.width == 80 and views["far"].image.shape[0] == 160
    assert all(v.box == box for name, v in views.items() if name != "far")
    assert views["jittered"].image is image and views["jittered"].jitters == 10
    assert all(v.jitters == 1 for name, v in views.items() if name != "jittered")
    # A face already under 80 px is not enlarged.
    small = FaceBox(top=10, right=70, bottom=70, left=10)
    assert {v.name: v for v in augmented_views(image, small)}["far"].box == small
    assert is_augmented("file+aug") and is_augmented("screen+aug") and not is_augmented("file")


def test_a_dim_camera_frame_matches_only_with_augmented_templates(
    face_data: Path, tmp_path: Path
) -> None:
    """Biden enrolled from biden.jpg; biden2.jpg seen dim at 100 px is 0.46 from his plain
    template (over the 0.45 threshold) and within it of the augmented ones."""
    image = load_image(face_data / "train/biden/biden2.jpg")
    assert image is not None
    probe = encodings_of(dim_camera_frame(image, 100))
    assert len(probe) == 1
    plain, plain_templates = roster(face_data, tmp_path, augment=False)
    augmented, templates = roster(face_data, tmp_path, augment=True)
    plain_templates.store.close()
    templates.store.close()
    assert not isinstance(plain.match(probe[0]), Match)
    decision = augmented.match(probe[0])
    assert isinstance(decision, Match) and decision.elder_id == "E0002", decision


def test_strangers_plain_or_dim_match_nobody(face_data: Path, tmp_path: Path) -> None:
    matcher, templates = roster(face_data, tmp_path, augment=True)
    templates.store.close()
    strangers = [face_data / "lin-manuel-miranda.png", *sorted((face_data / "crowd").iterdir())]
    probes = 0
    for path in strangers:
        image = load_image(path)
        assert image is not None, path
        seen = encodings_of(image)
        if len(seen) == 1:  # a portrait: also as the dim camera would see him
            seen += encodings_of(dim_camera_frame(image, 100))
        for encoding in seen:
            probes += 1
            assert not isinstance(matcher.match(encoding), Match), path
    assert probes > 50  # the crowd photos hold ~66 faces


def test_views_are_stored_apart_and_do_not_count_towards_the_limit(
    face_data: Path, tmp_path: Path
) -> None:
    _, templates = roster(face_data, tmp_path, augment=True)
    assert templates.count("E0002") == 1 + len(VIEW_NAMES)
    assert templates.count("E0002", augmented=False) == 1
    with templates.store.read() as session:
        query = select(FaceTemplate.source).where(FaceTemplate.elder_id == "E0002")
        sources = sorted(session.scalars(query))
    assert sources == ["file", *["file+aug"] * len(VIEW_NAMES)]
    enroller = Enroller(templates, 0.45, 0.08, augment=True)
    image = load_image(face_data / "train/biden/biden2.jpg")
    for n in range(2, MAX_TEMPLATES + 1):
        result = enroller.enrol("E0002", image, "同意书-1", NOW)
        assert isinstance(result, Enrolled) and result.templates == n, result
    refused = enroller.enrol("E0002", image, "同意书-1", NOW)
    assert getattr(refused, "reason", None) is EnrolRefusal.TOO_MANY_TEMPLATES
    templates.store.close()
