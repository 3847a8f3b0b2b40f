"""Card-tap evidence (anti-proxy): is the card holder's face in front of the camera?

The commonest subsidy fraud is a caregiver holding the elders' cards and tapping them all. With
a camera, every tap takes the current frame and compares the faces in it 1:1 with the card
holder's templates (`face.card_evidence`):

- off:      nothing (the tap is an ordinary card check-in);
- evidence: method card+face when the holder's face is seen; otherwise the record carries the
            flag no_face or face_mismatch, which travels with it to the platform;
- require:  as evidence, and a tap without the holder's face is refused (请正对摄像头再刷卡) —
            for elders who have a face template only: enrolment is voluntary, and an elder
            without one is never refused for it (flag no_template).

A camera that is not delivering fresh frames never blocks a tap: the record gets the flag
camera_unavailable. The check itself is a rule in `CheckinService` (`require_face`), so the
refusal is audited like every other.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from sqlalchemy import select

from hardware.camera import Camera, CameraState
from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.face.encode import encode_face
from kiosk.face.templates import FaceKeyError, TemplateStore
from kiosk.face.worker import FaceWorker
from models.db import Store
from models.tables import Card

log = logging.getLogger(__name__)

MAX_FRAME_AGE_S = 1.0  # an older frame does not show who is tapping now
MAX_FACES = 3  # the holder may stand beside the person holding the card


class CardEvidence:
    def __init__(
        self,
        mode: str,
        camera: Camera,
        worker: FaceWorker,
        templates: TemplateStore,
        store: Store,
    ) -> None:
        if mode not in ("evidence", "require"):
            raise ValueError(f"card evidence mode {mode!r}: build none for 'off'")
        self.mode = mode
        self.camera = camera
        self.worker = worker
        self.templates = templates
        self.store = store
        self.threshold = worker.face.threshold
        self.min_face_px = worker.detector.min_size(worker.face.min_face_px)

    def apply(self, req: CheckinRequest) -> CheckinRequest:
        """The tap's request with the evidence: method, flags, distance, require_face."""
        if req.card_uid is None:
            return req
        t0 = time.perf_counter()
        with self.store.read() as session:
            holder = session.scalar(select(Card.elder_id).where(Card.uid == req.card_uid))
        if holder is None:
            return req  # an unknown card is refused by the rules anyway
        return self._assess(req, holder, t0)

    def _assess(self, req: CheckinRequest, holder: str, t0: float) -> CheckinRequest:
        try:
            detector = self.worker.detector
            templates = [t for t in self.templates.for_elder(holder) if t.detector == detector.name]
        except FaceKeyError as exc:
            log.error("card evidence: %s", exc)
            return self._flag(req, "face_key_error")
        if not templates:
            return self._flag(req, "no_template")
        holder_templates = np.stack([t.encoding for t in templates])
        distance = self._recent_match(holder_templates)
        if distance is None:  # not seen by the worker just now: look at the frame ourselves
            frame = self._fresh_frame()
            if frame is None:
                return self._flag(req, "camera_unavailable")
            distance = self._best_distance(frame, holder_templates)
        log.info(
            "card evidence for %s: distance %s (%.0f ms)",
            holder, "none" if distance is None else f"{distance:.3f}",
            (time.perf_counter() - t0) * 1000,
        )  # fmt: skip
        require = self.mode == "require"
        if distance is not None and distance <= self.threshold:
            return dataclasses.replace(
                req, method=Method.CARD_FACE, distance=round(distance, 4), require_face=require
            )
        flag = "no_face" if distance is None else "face_mismatch"
        return dataclasses.replace(
            req,
            flags=req.flags | {flag},
            distance=None if distance is None else round(distance, 4),
            require_face=require,
        )

    def _flag(self, req: CheckinRequest, flag: str) -> CheckinRequest:
        return dataclasses.replace(req, flags=req.flags | {flag})

    def _recent_match(self, templates: np.ndarray) -> float | None:
        """The holder's distance to the face the worker analysed within MAX_FRAME_AGE_S, when
        that face is the holder's; else None. Saves a second ~80 ms encoding on the tap path
        in the usual case (the elder stands at the terminal while tapping)."""
        recent = self.worker.last_encoding
        if recent is None or time.monotonic() - recent[0] > MAX_FRAME_AGE_S:
            return None
        distance = float(np.sqrt(((templates - recent[1][None, :]) ** 2).sum(axis=1)).min())
        return distance if distance <= self.threshold else None

    def _fresh_frame(self) -> np.ndarray | None:
        if self.camera.status().state is not CameraState.OK:
            return None
        latest = self.camera.latest()
        if latest is None or time.monotonic() - latest[2] > MAX_FRAME_AGE_S:
            return None
        return latest[0]

    def _best_distance(self, frame_bgr: np.ndarray, templates: np.ndarray) -> float | None:
        """Smallest distance between any usable face in the frame and the holder's templates;
        None when the frame holds no face of usable size."""
        import cv2

        rgb = np.asarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        with self.worker.lock:
            boxes = self.worker.detector.detect(rgb)
            boxes = [b for b in boxes if b.size >= self.min_face_px][:MAX_FACES]
            encodings = [encode_face(rgb, box) for box in boxes]
        if not encodings:
            return None
        diffs = np.asarray(encodings)[:, None, :] - templates[None, :, :]
        return float(np.sqrt((diffs**2).sum(axis=2)).min())
