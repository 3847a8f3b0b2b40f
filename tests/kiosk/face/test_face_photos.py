"""The face pipeline with real dlib on the real photographs of ../shared/faces.

Every face is detected and encoded once per session (the `samples` fixture); the few tests
that need the whole pipeline on one image run it themselves.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.face_tools.calibrate import build_probes, evaluate
from bench.face_tools.dataset import FaceSample, load_rgb
from kiosk.face.liveness import LivenessCheck, LivenessMode, LivenessState
from kiosk.face.matcher import (
    DEFAULT_MIN_MARGIN,
    DEFAULT_THRESHOLD,
    FaceMatcher,
    Match,
)
from kiosk.face.pipeline import FacePipeline

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pkg_resources in the models
    # One xdist worker encodes the photos once (session fixture `samples`); the first test
    # pays for it, hence the longer bound.
    pytest.mark.xdist_group("face_photos"),
    pytest.mark.timeout(600),
]


def probes(samples: list[FaceSample], role: str) -> list[FaceSample]:
    return [s for s in samples if s.role == role]


def test_every_enrolment_photo_yields_one_template_per_person(
    samples: list[FaceSample],
) -> None:
    train = probes(samples, "train")
    assert len(train) == 9
    assert {s.label for s in train} == {
        "alex_lacamoire",
        "biden",
        "kit_harington",
        "obama",
        "rose_leslie",
    }


def test_every_test_face_is_identified(samples: list[FaceSample], enrolled: FaceMatcher) -> None:
    tests = probes(samples, "test")
    assert len(tests) >= 10  # 7 test photos (two with two enrolled faces) + two_people.jpg
    wrong = []
    for sample in tests:
        result = enrolled.match(sample.encoding)
        if not (isinstance(result, Match) and result.elder_id == sample.label):
            wrong.append((sample.image, sample.label, result))
    assert not wrong


def test_unknown_faces_are_not_matched(samples: list[FaceSample], enrolled: FaceMatcher) -> None:
    strangers = probes(samples, "stranger")
    images = {s.image for s in strangers}
    assert "lin-manuel-miranda.png" in images
    assert "test/obama_and_biden.jpg" in images  # the child in the background
    assert sum(s.image.startswith("crowd/") for s in strangers) >= 50
    matched = [
        (s.image, r) for s in strangers if isinstance(r := enrolled.match(s.encoding), Match)
    ]
    assert not matched


def test_two_people_is_obama_and_biden_not_strangers(
    samples: list[FaceSample], enrolled: FaceMatcher
) -> None:
    """The data README calls two_people.jpg unknown faces; it is Obama and Biden, and the
    right half is the enrolment photo of Biden itself. Recorded here so the mismatch is seen."""
    faces = [s for s in samples if s.image == "two_people.jpg"]
    assert [s.label for s in faces] == ["obama", "biden"]
    for sample in faces:
        result = enrolled.match(sample.encoding)
        assert isinstance(result, Match)
        assert result.elder_id == sample.label


def test_defaults_have_no_false_accept_and_no_false_reject(samples: list[FaceSample]) -> None:
    rates = evaluate(build_probes(samples), DEFAULT_THRESHOLD, DEFAULT_MIN_MARGIN)
    assert rates.genuine >= 15
    assert rates.strangers >= 60
    assert (rates.false_accept, rates.false_reject) == (0, 0)


def test_dlibs_usual_threshold_is_closer_to_the_impostors(samples: list[FaceSample]) -> None:
    """At 0.6 there is no error on this set either, but the nearest impostors sit just above;
    our default keeps a wide gap (see docs/face.md)."""
    probe_set = build_probes(samples)
    impostor = min(d for p in probe_set for e, d in p.per_elder.items() if e != p.label)
    assert impostor - 0.6 < 0.1
    assert impostor - DEFAULT_THRESHOLD > 0.15


@pytest.fixture(scope="module")
def photo_pipeline() -> FacePipeline:
    # Photos are large with faces of all sizes; the kiosk defaults are for 640x480 frames.
    return FacePipeline(detect_scale=1.0, upsample=1, min_face_px=40, coarse_scale=None)


@pytest.mark.parametrize(
    ("image", "expected"),
    [("test/obama_and_biden.jpg", "obama"), ("test/kit_with_rose.jpg", "kit_harington")],
)
def test_multi_face_frame_picks_the_largest_face(
    face_data: Path,
    enrolled: FaceMatcher,
    photo_pipeline: FacePipeline,
    image: str,
    expected: str,
) -> None:
    analysis = photo_pipeline.analyze(load_rgb(face_data / image))
    assert len(analysis.faces) >= 2
    assert analysis.chosen == max(analysis.faces, key=lambda b: b.area)
    result = enrolled.match(analysis.encoding)
    assert isinstance(result, Match)
    assert result.elder_id == expected


def test_partial_face_is_still_obama(samples: list[FaceSample], enrolled: FaceMatcher) -> None:
    (partial,) = [s for s in samples if s.image == "test/obama_partial_face.jpg"]
    result = enrolled.match(partial.encoding)
    assert isinstance(result, Match)
    assert result.elder_id == "obama"


def letterbox(image_rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = min(width / image_rgb.shape[1], height / image_rgb.shape[0])
    small = cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    return frame


def test_kiosk_pipeline_on_a_640x480_frame(face_data: Path, enrolled: FaceMatcher) -> None:
    frame_rgb = letterbox(load_rgb(face_data / "test/obama1.jpg"))
    frame_bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    analysis = FacePipeline(landmarks=True).analyze_bgr(frame_bgr)
    assert analysis.encoding is not None
    assert analysis.encoding.dtype == np.float32
    assert analysis.encoding.shape == (128,)
    assert analysis.landmarks is not None
    assert len(analysis.landmarks["left_eye"]) == 6
    assert analysis.timings.detect_ms > 0
    assert analysis.timings.encode_ms > 0
    result = enrolled.match(analysis.encoding)
    assert isinstance(result, Match)
    assert result.elder_id == "obama"


def test_empty_and_tiny_faces_give_no_encoding(face_data: Path) -> None:
    blank = FacePipeline().analyze(np.full((480, 640, 3), 128, np.uint8))
    assert (blank.encoding, blank.reason) == (None, "no face")
    # kit_with_rose at full size: faces of 74 and 107 px, below a 150 px minimum.
    strict = FacePipeline(detect_scale=1.0, upsample=1, min_face_px=150, coarse_scale=None)
    tiny = strict.analyze(load_rgb(face_data / "test/kit_with_rose.jpg"))
    assert tiny.faces
    assert tiny.encoding is None
    assert "smaller than 150 px" in tiny.reason


def test_a_still_photo_shown_as_video_fails_blink_liveness(face_data: Path) -> None:
    """The issue's spoof case: the same frame repeated, through real 68-point landmarks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = FacePipeline(detect_scale=0.75, landmarks=True)
        frame = letterbox(load_rgb(face_data / "train/obama/obama.jpg"))
        analysis = pipeline.analyze(frame)
    assert analysis.landmarks is not None
    check = LivenessCheck(LivenessMode.BLINK, timeout_s=3.0)
    check.start(now=0.0)
    for i in range(40):  # 4 s at 10 fps, slightly shifted each frame like a hand-held photo
        marks = {
            k: [(x + (i % 3), y + (i % 2)) for x, y in pts] for k, pts in analysis.landmarks.items()
        }
        check.update(marks, now=i / 10)
    assert check.state == LivenessState.FAILED
