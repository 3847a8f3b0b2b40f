"""Live-camera enrolment from a real video: the touchscreen keeps the best distinct frames.

hardware.camera.Camera reads /work/shared/faces/short_hamilton_clip.mp4 (OpenCV, at half speed,
looping) as the terminal's camera; real dlib. Lin's face is in view in frames 84-210 of 275.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hardware.camera import Camera
from kiosk.face.enrol import MIN_SPREAD, SESSION_KEEP, load_image
from kiosk.face.templates import FaceKey, TemplateStore
from kiosk.runtime.services import KioskServices
from models.tables import AuditEvent
from tests.support.ui import sign_in_client

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("face_live_enrol")]


@pytest.fixture
def clip_camera(face_data: Path, services: KioskServices) -> Iterator[Camera]:
    camera = Camera(str(face_data / "short_hamilton_clip.mp4"), loop=True, playback_speed=0.5)
    camera.start()
    services.camera = camera
    yield camera
    services.camera = None
    camera.close()


def wait_for_a_usable_face(client: TestClient, timeout_s: float = 90.0) -> None:
    """Poll the preview's quality hint until the gates pass (Lin walks into view)."""
    deadline = time.monotonic() + timeout_s
    states = []
    while time.monotonic() < deadline:
        state = client.get("/api/enrol/quality").json()["state"]
        states.append(state)
        if state == "ok":
            return
    pytest.fail(f"no frame passed the gates within {timeout_s} s: {states[-10:]}")


def test_live_enrolment_keeps_the_best_distinct_frames(
    caregiver_client: TestClient, services: KioskServices, clip_camera: Camera, face_data: Path
) -> None:
    client = caregiver_client
    token = sign_in_client(client, "/enrol")
    form = {"csrf": token, "consent": "yes", "consent_ref": "同意书-20261202-E0001"}
    body: dict[str, object] = {}
    for _attempt in range(3):  # Lin may walk out of view while the session watches: retry
        wait_for_a_usable_face(client)
        body = client.post("/api/enrol", data={**form, "elder_id": "E0001"}).json()
        if body["outcome"] == "enrolled":
            break
    assert body["outcome"] == "enrolled", body
    assert 2 <= body["kept"] <= SESSION_KEEP and body["frames"] >= 5, body
    templates = TemplateStore(services.store, FaceKey.load(services.data_dir))
    stored = templates.for_elder("E0001")  # the kept frames (augment_templates is off)
    assert len(stored) == body["kept"] == body["templates"]
    for a, b in itertools.combinations(stored, 2):  # distinct: no picture kept twice
        assert np.linalg.norm(a.encoding - b.encoding) >= MIN_SPREAD
    # The templates are Lin: his portrait from another occasion is near at least one of them.
    from kiosk.face.detect import detect_faces
    from kiosk.face.encode import encode_face

    portrait = load_image(face_data / "lin-manuel-miranda.png")
    assert portrait is not None
    probe = encode_face(portrait, detect_faces(portrait, 1.0, 1)[0])
    nearest = min(float(np.linalg.norm(t.encoding - probe)) for t in stored)
    spreads = [
        float(np.linalg.norm(a.encoding - b.encoding)) for a, b in itertools.combinations(stored, 2)
    ]
    log.info(
        "live session: %s; spreads %s; portrait to nearest template %.3f", body, spreads, nearest
    )
    assert nearest < 0.55, nearest  # clip frames to the portrait: 0.31-0.58; strangers >= 0.61
    with services.store.read() as s:
        events = [
            (a.kind, json.loads(a.detail)) for a in s.scalars(select(AuditEvent))
            if a.kind.startswith("face_enrol")
        ]  # fmt: skip
    enrolled = [d for k, d in events if k == "face_enrolled"]
    assert len(enrolled) == 1
    assert sorted(enrolled[0]["templates"]) == sorted(t.id for t in stored)

    # The 1:N guard holds for live sessions: the same face for another elder is refused.
    refused: dict[str, object] = {}
    for _attempt in range(3):
        wait_for_a_usable_face(client)
        refused = client.post("/api/enrol", data={**form, "elder_id": "E0002"}).json()
        if refused.get("reason") != "no_face" and refused.get("reason") != "face_too_small":
            break
    assert refused["outcome"] == "refused" and refused["reason"] == "duplicate", refused
    assert "E0001" in str(refused["message"])
    assert templates.for_elder("E0002") == []
