"""`face.detector`: HOG or YuNet (libfacedetection, package `yuface`) behind one interface.

Real photos of ../shared/faces and the Hamilton clip (skipped where absent); YuNet tests skip
where yuface is not installed (it has x86-64 wheels only). Also: templates remember their
detector, a mismatch is refused with a message (worker, doctor), the config refuses `yunet`
where it cannot run, and libfacedetection runs single-threaded.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.config import ConfigError, parse_config
from kiosk.face.detect import FaceBox, FaceDetector, HogDetector, choose_face, make_detector
from kiosk.face.detect_yunet import yunet_unavailable
from kiosk.face.enrol import Enrolled, Enroller, load_image
from kiosk.face.matcher import FaceMatcher, Match
from kiosk.face.pipeline import FacePipeline
from kiosk.face.templates import FaceKey, TemplateStore, templates_by_detector
from kiosk.face.worker import FaceWorker
from kiosk.ops.doctor import Level, check_face_templates
from kiosk.runtime.daemon import build_services
from models.db import Store
from models.roster import apply_rows
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ, Clock, elder_row

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=TZ)
pytestmark = pytest.mark.xdist_group("face_detector")
needs_yunet = pytest.mark.skipif(yunet_unavailable() is not None, reason=str(yunet_unavailable()))
SINGLE = [
    "train/obama/obama.jpg",
    "train/biden/biden.jpg",
    "train/alex_lacamoire/img1.jpg",
    "train/kit_harington/john1.jpeg",
    "train/rose_leslie/img1.jpg",
    "lin-manuel-miranda.png",
]
DETECTORS = ["hog", pytest.param("yunet", marks=needs_yunet)]


def on_frame(rgb: np.ndarray, face_height: int = 0) -> tuple[np.ndarray, float]:
    """The photo scaled to fit a 640x480 frame (grey border), as a camera would see it; the
    scale used."""
    h, w = rgb.shape[:2]
    scale = min(640 / w, 480 / h)
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 96, np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    return frame, scale


def centre_inside(box: FaceBox, other: FaceBox) -> bool:
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    return other.left <= cx <= other.right and other.top <= cy <= other.bottom


@needs_yunet
@pytest.mark.parametrize("photo", SINGLE)
def test_yunet_finds_the_face_where_hog_does(face_data: Path, photo: str) -> None:
    image = load_image(face_data / photo)
    assert image is not None
    hog = make_detector("hog", enrol=True).detect(image)
    yunet = make_detector("yunet", enrol=True).detect(image)
    assert len(hog) == 1
    assert yunet, photo
    best = yunet[0]  # largest first
    assert centre_inside(best, hog[0]) and centre_inside(hog[0], best), (best, hog[0])
    assert 0.6 < best.width / hog[0].width < 1.6, (best, hog[0])
    h, w = image.shape[:2]
    assert 0 <= best.left < best.right <= w and 0 <= best.top < best.bottom <= h


@needs_yunet
def test_yunet_boxes_are_in_full_resolution_coordinates(face_data: Path) -> None:
    """At the kiosk's input scale (0.5) the box comes back where the face is in the frame."""
    image = load_image(face_data / "train/obama/obama.jpg")
    assert image is not None
    frame, _ = on_frame(image)
    full = make_detector("yunet", 1.0).detect(frame)
    half = make_detector("yunet").detect(frame)
    assert full and half
    a, b = full[0], half[0]
    for x, y in ((a.left, b.left), (a.right, b.right), (a.top, b.top), (a.bottom, b.bottom)):
        assert abs(x - y) <= 0.12 * a.width, (a, b)
    assert frame.shape[:2] == (480, 640) and b.right <= 640 and b.bottom <= 480


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_gives_none(name: str) -> None:
    rng = np.random.default_rng(3)
    grey = np.full((480, 640, 3), 128, np.uint8)
    noise = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    detector = make_detector(name)
    assert detector.detect(grey) == []
    assert choose_face(detector.detect(noise), 64) is None
    assert FacePipeline(detector=detector).analyze(grey).reason == "no face"


@pytest.mark.parametrize("name", DETECTORS)
def test_a_crowd_photo_without_the_elder_nearby_has_no_usable_face(
    face_data: Path, name: str
) -> None:
    """The crowd photos hold small faces only: found, but under the 64 px floor."""
    image = load_image(face_data / "crowd/2007_007763.jpg")
    assert image is not None
    frame, _ = on_frame(image)
    detector = make_detector(name)
    pipeline = FacePipeline(detector=detector, min_face_px=150)
    analysis = pipeline.analyze(frame)
    assert analysis.encoding is None
    assert analysis.reason in ("no face", f"face smaller than {detector.min_size(150)} px")


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize(
    "garbage",
    [
        np.zeros((480, 640), np.uint8),  # grey, not 3 channels
        np.zeros((480, 640, 3), np.float32),
        np.zeros((0, 640, 3), np.uint8),
        np.zeros((480, 640, 4), np.uint8),
        "frame.jpg",
    ],
    ids=["grey", "float", "empty", "rgba", "str"],
)
def test_garbage_input_is_a_clear_error(name: str, garbage: object) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8 image"):
        make_detector(name).detect(garbage)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", DETECTORS)
def test_minimum_face_size_rule_applies(face_data: Path, name: str) -> None:
    image = load_image(face_data / "train/obama/obama.jpg")
    assert image is not None
    frame, _ = on_frame(image)
    detector = make_detector(name)
    box = detector.detect(frame)[0]
    # face.min_face_px is in HOG-box pixels; YuNet's narrower boxes get a floor 0.85 of it
    assert detector.min_size(64) == (64 if name == "hog" else 54)
    floor = next(m for m in range(40, 1000) if detector.min_size(m) > box.size)
    assert (
        FacePipeline(detector=detector, min_face_px=floor - 1).analyze(frame).encoding is not None
    )
    refused = FacePipeline(detector=detector, min_face_px=floor).analyze(frame)
    assert refused.encoding is None
    assert refused.reason == f"face smaller than {detector.min_size(floor)} px"


def test_hog_coarse_look_first_and_full_scale_when_it_finds_nothing(
    face_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`face.coarse_scale`: HOG's first look is at the coarse scale; a large face found there
    costs that look only, a face too small for it (Biden's at 68 px) is found by a second,
    full-scale look."""
    from kiosk.face import detect

    looks: list[float] = []
    real = detect.detect_faces

    def counted(image: np.ndarray, scale: float, upsample: int) -> list[FaceBox]:
        looks.append(scale)
        return real(image, scale, upsample)

    monkeypatch.setattr(detect, "detect_faces", counted)
    hog = make_detector("hog", 1.0, coarse_scale=0.75)
    large, _ = on_frame(load_image(face_data / "train/obama/obama.jpg"))
    assert hog.detect(large) and looks == [0.75]
    biden, _ = on_frame(load_image(face_data / "train/biden/biden.jpg"))
    box = HogDetector(scale=1.0).detect(biden)[0]
    small = cv2.resize(biden, None, fx=68 / box.width, fy=68 / box.width)
    assert not HogDetector(scale=0.75).detect(small)  # the coarse look alone misses it
    looks.clear()
    assert hog.detect(small) and looks == [0.75, 1.0]
    looks.clear()
    assert make_detector("hog").detect(large) and looks == [1.0]  # off by default


@needs_yunet
def test_yunet_on_the_live_clip_finds_lin_where_hog_does(face_data: Path) -> None:
    cap = cv2.VideoCapture(str(face_data / "short_hamilton_clip.mp4"))
    hog, yunet = make_detector("hog"), make_detector("yunet")
    both = hog_only = 0
    try:
        for index in range(0, 275, 10):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            # The face HOG keeps is one YuNet finds too (not necessarily the one YuNet keeps:
            # at full scale a second person's face can be the largest in one detector's boxes).
            boxes = yunet.detect(rgb)
            a, b = choose_face(hog.detect(rgb), 64), choose_face(boxes, 64)
            if a is not None and b is not None:
                assert any(centre_inside(a, y) and centre_inside(y, a) for y in boxes), index
                both += 1
            elif a is not None:
                hog_only += 1
    finally:
        cap.release()
    assert both >= 5 and hog_only <= 1, (both, hog_only)


# -- templates remember their detector --------------------------------------------------------


def _store(tmp_path: Path) -> tuple[Store, TemplateStore]:
    store = Store(tmp_path / "data" / "kiosk.db")
    store.upgrade_schema()
    apply_rows(store, [elder_row(n) for n in (1, 2)], NOW, source="test")
    return store, TemplateStore(store, FaceKey.load(tmp_path / "data"))


@needs_yunet
def test_yunet_enrolment_identifies_and_records_its_detector(
    face_data: Path, tmp_path: Path
) -> None:
    store, templates = _store(tmp_path)
    try:
        enroller = Enroller(templates, 0.45, 0.08, detector="yunet")
        for elder, photo in (
            ("E0001", "train/obama/obama.jpg"),
            ("E0002", "train/biden/biden.jpg"),
        ):
            result = enroller.enrol(elder, load_image(face_data / photo), "同意书-1", NOW)
            assert isinstance(result, Enrolled), result
        assert {t.detector for t in templates.all()} == {"yunet"}
        assert templates_by_detector(store) == {"yunet": (2, 2)}
        matcher = FaceMatcher(0.45, 0.08)
        matcher.set_roster((t.elder_id, t.encoding) for t in templates.all())
        pipeline = FacePipeline(detector=make_detector("yunet"))
        probes = (("test/obama1.jpg", "E0001"), ("train/biden/biden2.jpg", "E0002"))
        for photo, elder in probes:
            image = load_image(face_data / photo)
            assert image is not None
            frame, _ = on_frame(image)
            analysis = pipeline.analyze(frame)
            assert analysis.encoding is not None, photo
            decision = matcher.match(analysis.encoding)
            assert isinstance(decision, Match) and decision.elder_id == elder, (photo, decision)
        lin = load_image(face_data / "lin-manuel-miranda.png")
        assert lin is not None
        stranger = pipeline.analyze(on_frame(lin)[0]).encoding
        assert stranger is not None and not isinstance(matcher.match(stranger), Match)
    finally:
        store.close()


def test_templates_of_another_detector_are_not_matched(tmp_path: Path) -> None:
    """HOG templates with face.detector yunet (or the reverse): the worker matches none of
    them and says why; doctor warns; the enrolment limit counts only the detector's own."""
    other = "yunet" if yunet_unavailable() is None else None
    if other is None:
        pytest.skip(str(yunet_unavailable()))
    clock = Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))
    store, templates = _store(tmp_path)
    encoding = np.zeros(128, np.float32)
    encoding[0] = 1
    for _ in range(2):
        templates.add("E0001", encoding, quality=100, face_px=120, consent_ref="c", at=clock())
    config = parse_config(BASE_CONFIG + "camera: {enabled: true}\nface: {detector: yunet}\n")
    services = build_services(config, tmp_path / "data", readers=[], store=store, clock=clock)
    worker = FaceWorker(config.face, None, services.checkin, templates)  # type: ignore[arg-type]
    worker.reload()
    assert worker.state == "error"
    assert "face.detector is yunet, but 2 template(s) of 1 elder(s) by hog" in worker.detail
    assert worker.matcher.template_count == 0
    check = check_face_templates(config, store)
    assert check.level is Level.WARN and "re-enrol" in check.detail
    # one elder re-enrolled with yunet: matched; the hog ones still are not, and still said
    templates.add(
        "E0002", encoding, quality=100, face_px=120, consent_ref="c", at=clock(), detector="yunet"
    )
    worker.reload()
    assert worker.state == "ok" and worker.matcher.template_count == 1
    assert "by hog" in worker.detail
    assert templates.count("E0001", augmented=False, detector="yunet") == 0
    assert templates.count("E0001", augmented=False) == 2
    hog_config = parse_config(BASE_CONFIG + "camera: {enabled: true}\n")
    assert check_face_templates(hog_config, store).level is Level.WARN  # the yunet one now
    store.close()


def test_existing_templates_are_hog(tmp_path: Path) -> None:
    store, templates = _store(tmp_path)
    templates.add("E0001", np.ones(128), quality=1, face_px=100, consent_ref="c", at=NOW)
    assert [t.detector for t in templates.all()] == ["hog"]
    config = parse_config(BASE_CONFIG + "camera: {enabled: true}\n")
    assert check_face_templates(config, store).level is Level.OK
    store.close()


# -- config -----------------------------------------------------------------------------------


def test_config_detector_default_and_choices() -> None:
    assert parse_config(BASE_CONFIG).face.detector == "hog"
    with pytest.raises(ConfigError, match="detector"):
        parse_config(BASE_CONFIG + "face: {detector: cnn}\n")
    assert isinstance(make_detector("hog"), HogDetector)
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("cnn")


@needs_yunet
def test_config_accepts_yunet_where_installed() -> None:
    face = parse_config(BASE_CONFIG + "face: {detector: yunet, yunet_scale: 0.6}\n").face
    assert face.detector == "yunet" and face.yunet_scale == 0.6
    detector: FaceDetector = make_detector(face.detector, face.yunet_scale)
    assert detector.name == "yunet"


def test_config_refuses_yunet_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.face import detect_yunet

    monkeypatch.setattr(
        detect_yunet.importlib.util,
        "find_spec",
        lambda name, *a: None,  # no yuface here
    )
    assert "x86-64" in str(detect_yunet.yunet_unavailable())
    with pytest.raises(ConfigError, match=r"yunet needs the yuface package.*use face.detector hog"):
        parse_config(BASE_CONFIG + "face: {detector: yunet}\n")
    assert parse_config(BASE_CONFIG + "face: {detector: hog}\n").face.detector == "hog"


# -- OpenMP threads ---------------------------------------------------------------------------

THREADS_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import cv2
    import numpy as np
    frame = np.full((480, 640, 3), 128, np.uint8)
    if sys.argv[1] == "kiosk":
        from kiosk.face.detect import make_detector
        detect = make_detector("yunet").detect
    else:
        import yuface
        detect = yuface.detect
    # OpenCV's own thread pool starts on its first parallel call: start it before counting.
    cv2.cvtColor(cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                 cv2.COLOR_RGB2BGR)
    before = len(os.listdir("/proc/self/task"))
    detect(frame)
    print(before, len(os.listdir("/proc/self/task")), os.environ.get("OMP_NUM_THREADS"))
    """
)


@needs_yunet
def test_libfacedetection_runs_single_threaded() -> None:
    """Loaded through kiosk.face.detect_yunet, libfacedetection starts no OpenMP threads and
    leaves OMP_NUM_THREADS as it found it; loaded plainly it starts one per extra core."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}

    def threads(how: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT, how],
            capture_output=True, text=True, env=env, check=True, timeout=60,
        )  # fmt: skip
        return out.stdout.split()

    before, after, omp = threads("kiosk")
    assert after == before and omp == "None"
    if (os.cpu_count() or 1) > 1:  # the control: the same call without our loader
        plain_before, plain_after, _ = threads("plain")
        assert int(plain_after) > int(plain_before)
