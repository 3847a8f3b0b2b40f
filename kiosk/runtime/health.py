"""The kiosk's health as typed parts: what `KioskServices.health()` returns.

Read by attribute (status bar, /metrics, the heartbeat); `Health.as_json()` is the body of
GET /api/health, whose shape technicians' scripts and the tests rely on: a part that is not in
use says only its state ({"state": "disabled"}), so each part writes its own JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from hardware.speaker import SpeakerStatus
from kiosk.face.worker import FaceStatus

Json = dict[str, object]
OverallStatus = Literal["ok", "degraded", "error"]
StorageState = Literal["ok", "full", "read_only", "error"]


@dataclass(frozen=True)
class StorageHealth:
    """The database and the filesystem under it (the "db" part of the JSON)."""

    ok: bool  # the database answers
    detail: str
    free_bytes: int | None  # None: the filesystem could not be asked
    storage: StorageState
    storage_detail: str
    low_space: bool = False  # still writable, but running out (not in the JSON)

    @property
    def writable(self) -> bool:
        """A check-in can be stored now."""
        return self.ok and self.storage == "ok"

    def as_json(self) -> Json:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "free_bytes": self.free_bytes,
            "storage": self.storage,
            "storage_detail": self.storage_detail,
            "writable": self.writable,
        }


@dataclass(frozen=True)
class ReaderHealth:
    state: str  # hardware.readers.ReaderState
    detail: str = ""

    def as_json(self) -> Json:
        return {"state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class CameraHealth:
    state: str  # "disabled" or hardware.camera.CameraState
    detail: str = ""
    fps: float = 0.0
    resolution: str | None = None  # "640x480" once a frame size is known
    frames: int = 0
    reconnects: int = 0

    def as_json(self) -> Json:
        if self.state == "disabled":
            return {"state": self.state}
        return {
            "state": self.state,
            "detail": self.detail,
            "fps": self.fps,
            "resolution": self.resolution,
            "frames": self.frames,
            "reconnects": self.reconnects,
        }


@dataclass(frozen=True)
class FaceHealth:
    state: str  # "disabled" or the worker's state
    worker: FaceStatus | None = None  # None when face check-in is not configured

    def as_json(self) -> Json:
        return asdict(self.worker) if self.worker is not None else {"state": self.state}


@dataclass(frozen=True)
class SpeakerHealth:
    state: str  # disabled | unknown (not started) | the speaker's own state
    detail: str = ""
    speaker: SpeakerStatus | None = None  # None until spoken prompts run

    def as_json(self) -> Json:
        if self.speaker is not None:
            return asdict(self.speaker)
        return (
            {"state": self.state, "detail": self.detail} if self.detail else {"state": self.state}
        )


@dataclass(frozen=True)
class SyncHealth:
    state: Literal["off", "ok", "error"]
    detail: str = ""  # why sync is off
    last_success_at: dt.datetime | None = None
    last_error: str | None = None
    roster_version: int | None = None
    checkpoint_conflict: str | None = None

    def as_json(self) -> Json:
        if self.state == "off":
            return {"state": self.state, "detail": self.detail}
        last = self.last_success_at
        return {
            "state": self.state,
            "last_success_at": last.isoformat() if last else None,
            "last_error": self.last_error,
            "roster_version": self.roster_version,
            "checkpoint_conflict": self.checkpoint_conflict,
        }


@dataclass(frozen=True)
class Health:
    # "error" (503) exactly when a check-in could not be stored now; "degraded" while any
    # problem shows, still serving.
    status: OverallStatus
    problems: tuple[str, ...]  # in Chinese, for the caregiver
    version: str
    device_id: str
    point_id: str
    time: dt.datetime
    db: StorageHealth
    readers: Mapping[str, ReaderHealth]
    camera: CameraHealth
    face: FaceHealth
    queue_depth: int | None  # records waiting for upload; None when the database is down
    rejected: int | None  # records the platform refused, kept for a person to look at
    sync: SyncHealth
    clock_synchronised: bool | None  # None: cannot tell
    speaker: SpeakerHealth = field(default_factory=lambda: SpeakerHealth("disabled"))

    def as_json(self) -> Json:
        return {
            "status": self.status,
            "problems": list(self.problems),
            "version": self.version,
            "device_id": self.device_id,
            "point_id": self.point_id,
            "time": self.time.isoformat(),
            "db": self.db.as_json(),
            "readers": {name: r.as_json() for name, r in self.readers.items()},
            "camera": self.camera.as_json(),
            "face": self.face.as_json(),
            "queue_depth": self.queue_depth,
            "rejected": self.rejected,
            "sync": self.sync.as_json(),
            "clock_synchronised": self.clock_synchronised,
            "speaker": self.speaker.as_json(),
        }
