"""Calibrate the enrolment gates on the degraded set (bench/face_tools/degraded.py).

For every degraded photo: faces found as enrolment finds them, face size, the old sharpness
and brightness, the encoding, its instability (distance to the encoding of a slightly
degraded copy, kiosk.face.enrol.encoding_instability) and the head pose from the 5 points.
Then, for each gate setting: every person enrols from their photos in order, taking the first
two variants that pass the gates (all from one source photo: one enrolment session); probes
are the variants of their OTHER photos (never gated: a probe is a camera frame). Reports
failure to enrol (people with fewer than two templates), false rejects among the genuine
probes and false accepts among other people's probes and the crowd strangers, at the
kiosk's threshold and margin.

`python -m bench.face_tools.enrol_gates [--faces DIR] [--variants 6]`
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.face_tools.dataset import load_samples, require_face_data
from bench.face_tools.degraded import Degraded, build
from kiosk.face.detect import FaceBox, detect_faces
from kiosk.face.encode import encode_face, encode_face_with_points
from kiosk.face.enrol import FaceQuality, fit_photo, judge_face, measure_face
from kiosk.face.matcher import DEFAULT_MIN_MARGIN, DEFAULT_THRESHOLD, FaceMatcher, Match
from kiosk.face.parallax import yaw_cues

log = logging.getLogger(__name__)

STABILITY_SCALE = 0.8  # the degraded copy for the instability measure: this size, blur, JPEG 75


def degraded_copy(image_rgb: NDArray[np.uint8], box: FaceBox) -> tuple[NDArray[np.uint8], FaceBox]:
    """The photo as a slightly worse camera would give it: 0.8 x the size, a light blur and
    JPEG at quality 75; with the face box scaled to match."""
    small = cv2.resize(image_rgb, None, fx=STABILITY_SCALE, fy=STABILITY_SCALE,
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    small = cv2.GaussianBlur(small, (0, 0), 0.6)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 75])  # fmt: skip
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)
    copy = np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    h, w = copy.shape[:2]
    scaled = FaceBox(
        top=max(0, round(box.top * STABILITY_SCALE)),
        right=min(w, round(box.right * STABILITY_SCALE)),
        bottom=min(h, round(box.bottom * STABILITY_SCALE)),
        left=max(0, round(box.left * STABILITY_SCALE)),
    )
    return copy, scaled


def encoding_instability(
    image_rgb: NDArray[np.uint8], box: FaceBox, encoding: NDArray[np.float32]
) -> float:
    """Distance between the photo's encoding and that of its degraded copy: small when the
    recogniser sees the same face through a slightly worse camera, large when the photo is
    at the edge of what it can use (blur, noise, too few pixels, odd light)."""
    copy, scaled = degraded_copy(image_rgb, box)
    return float(np.linalg.norm(encode_face(copy, scaled) - encoding))


def head_pose(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(|eye-width log ratio|, |nose offset|) from the 5 points: both 0 for a frontal face."""
    cues = yaw_cues(points)
    if cues is None:
        return float("inf"), float("inf")
    return abs(cues.eye_ratio), abs(cues.nose_offset)


@dataclass
class Measured:
    item: Degraded
    faces: int
    face_px: int = 0
    sharpness: float = 0.0
    brightness: float = 0.0
    instability: float = float("inf")
    eye_ratio: float = float("inf")
    nose_offset: float = float("inf")
    roll_deg: float = float("inf")
    clipped: float = 1.0
    quality: FaceQuality | None = None
    encoding: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class Gates:
    name: str
    min_face_px: int = 0
    min_sharpness: float = 0.0
    max_instability: float = float("inf")
    max_eye_ratio: float = float("inf")
    max_nose_offset: float = float("inf")
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    max_roll_deg: float = float("inf")
    max_clipped: float = 1.0
    kiosk: bool = False  # the Enroller's own gates (kiosk.face.enrol.judge_face)

    def accept(self, m: Measured) -> bool:
        if self.kiosk:
            return (
                m.faces == 1
                and m.quality is not None
                and judge_face(m.quality, min_brightness=self.min_brightness) is None
            )
        return (
            m.faces == 1
            and m.roll_deg <= self.max_roll_deg
            and m.clipped <= self.max_clipped
            and m.face_px >= self.min_face_px
            and m.sharpness >= self.min_sharpness
            and m.instability <= self.max_instability
            and m.eye_ratio <= self.max_eye_ratio
            and m.nose_offset <= self.max_nose_offset
            and self.min_brightness <= m.brightness <= self.max_brightness
        )


def measure(item: Degraded) -> Measured:
    image = fit_photo(item.image)
    boxes = detect_faces(image, scale=1.0, upsample=1)
    m = Measured(item, len(boxes))
    if not boxes:
        return m
    box = boxes[0]
    m.face_px = box.size
    encoding, points = encode_face_with_points(image, box)
    m.quality = measure_face(image, box, points)
    m.sharpness, m.brightness = m.quality.sharpness, m.quality.brightness
    m.roll_deg, m.clipped = m.quality.roll_deg, m.quality.clipped
    m.encoding = encoding
    m.instability = encoding_instability(image, box, encoding)
    m.eye_ratio, m.nose_offset = head_pose(points)
    return m


@dataclass
class Outcome:
    gates: str
    fte: int  # people with fewer than two templates
    accepted: int  # variants passing the gates, of all
    genuine: int
    false_rejects: int
    false_accepts: int
    impostor_trials: int


def evaluate(
    gates: Gates, measured: list[Measured], strangers: list[NDArray[np.float32]]
) -> Outcome:
    people = sorted({m.item.person for m in measured})
    templates: dict[str, list[NDArray[np.float32]]] = {}
    sources: dict[str, str] = {}
    for person in people:
        mine = [m for m in measured if m.item.person == person]
        for source in dict.fromkeys(m.item.source for m in mine):
            passing = [m for m in mine if m.item.source == source and gates.accept(m)]
            if len(passing) >= 2:
                templates[person] = [p.encoding for p in passing[:2] if p.encoding is not None]
                sources[person] = source
                break
    matcher = FaceMatcher(DEFAULT_THRESHOLD, DEFAULT_MIN_MARGIN)
    matcher.set_roster((p, e) for p, encs in templates.items() for e in encs)
    genuine = rejects = accepts = trials = 0
    for m in measured:
        if m.encoding is None or sources.get(m.item.person) == m.item.source:
            continue
        decision = matcher.match(m.encoding)
        if m.item.person in templates:
            genuine += 1
            rejects += not (isinstance(decision, Match) and decision.elder_id == m.item.person)
        else:
            trials += 1
            accepts += isinstance(decision, Match)
        for other in templates:
            if other != m.item.person:
                trials += 1
        if isinstance(decision, Match) and decision.elder_id != m.item.person:
            accepts += m.item.person in templates
    for encoding in strangers:
        trials += len(templates)
        accepts += isinstance(matcher.match(encoding), Match)
    return Outcome(
        gates.name,
        len(people) - len(templates),
        sum(gates.accept(m) for m in measured),
        genuine,
        rejects,
        accepts,
        trials,
    )


GATE_SETS = [
    Gates("old: face >= 100 px, sharpness >= 80", min_face_px=100, min_sharpness=80),
    Gates("face >= 100 px, no sharpness floor", min_face_px=100),
    Gates("face >= 80 px, no sharpness floor", min_face_px=80),
    Gates("face >= 64 px, no sharpness floor", min_face_px=64),
    *(Gates(f"face >= 64 px, sharpness >= {f}", min_face_px=64, min_sharpness=f) for f in (10, 20)),
    *(
        Gates(f"face >= 64 px, instability <= {t}", min_face_px=64, max_instability=t)
        for t in (0.12, 0.16, 0.20)
    ),
    Gates(
        "face >= 64 px, frontal (eye ratio <= 0.35, nose <= 0.25)",
        min_face_px=64,
        max_eye_ratio=0.35,
        max_nose_offset=0.25,
    ),
    Gates(
        "face >= 64 px, roll <= 30°, clipped <= 0.25",
        min_face_px=64,
        max_roll_deg=30,
        max_clipped=0.25,
    ),
    *(
        Gates(
            f"face >= 64 px, no sharpness floor, mean grey >= {b}", min_face_px=64, min_brightness=b
        )
        for b in (25, 30)
    ),
    *(
        Gates(f"kiosk gates (judge_face), mean grey >= {b}", kiosk=True, min_brightness=b)
        for b in (25, 30, 40)
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--verbose", action="store_true", help="every photo's measures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    faces = require_face_data(args.faces)
    items = build(faces, args.variants)
    measured = [measure(item) for item in items]
    strangers = [s.encoding for s in load_samples(faces) if s.role == "stranger"]
    inst = sorted(m.instability for m in measured if m.faces == 1)
    log.info(
        "%d degraded photos, %d with one face; instability p10 %.3f p50 %.3f p90 %.3f; "
        "sharpness < 80 in %d",
        len(measured), len(inst), *np.percentile(inst, [10, 50, 90]),
        sum(m.sharpness < 80 for m in measured if m.faces == 1),
    )  # fmt: skip
    for m in measured:
        verdict = judge_face(m.quality) if m.quality is not None else None
        log.debug(
            "%s %s: faces %d, %s -> %s", m.item.source, m.item.recipe, m.faces,
            m.quality.as_detail() if m.quality else "-", verdict.reason if verdict else "ok",
        )  # fmt: skip
    lines = [
        "| gates | failed to enrol (of 5) | variants accepted | FR / genuine probes | "
        "FA / impostor trials |",
        "|---|---|---|---|---|",
    ]
    for gates in GATE_SETS:
        o = evaluate(gates, measured, strangers)
        lines.append(
            f"| {o.gates} | {o.fte} | {o.accepted} / {len(measured)} | "
            f"{o.false_rejects} / {o.genuine} | {o.false_accepts} / {o.impostor_trials} |"
        )
    log.info("%s", "\n".join(lines))


if __name__ == "__main__":
    main()
