"""The running parts of a kiosk that the web app and the CLI share.

Built by kiosk.runtime.daemon."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hardware.camera import Camera
from hardware.speaker import Speaker
from kiosk import __version__
from kiosk.checkin.events import EventBus
from kiosk.checkin.rules import CheckinService, Refusal
from kiosk.config import KioskConfig
from kiosk.face.worker import FaceWorker
from kiosk.runtime.health import (
    CameraHealth,
    FaceHealth,
    Health,
    OverallStatus,
    ReaderHealth,
    SpeakerHealth,
    StorageHealth,
    StorageState,
    SyncHealth,
)
from kiosk.runtime.reader_hub import ReaderHub
from kiosk.touchscreen.card_binding import CardBinding
from models.db import Store
from models.tables import Outbox

if TYPE_CHECKING:
    # Imported by the daemon only when card evidence is on (it loads the face models' code).
    from kiosk.face.card_evidence import CardEvidence
    from sync.scheduler import SyncState

log = logging.getLogger(__name__)

LOW_DISK_BYTES = 64 * 1024 * 1024
# Below this, SQLite cannot be trusted to find room for a record: the disk counts as full.
DISK_FULL_BYTES = 1024 * 1024
# After a "disk full" refusal, this much space must come free before health calls it cleared.
FREED_BYTES = 256 * 1024
STORAGE_PROBLEMS: dict[StorageState, str] = {
    "full": "存储空间已满，请联系管理员",
    "read_only": "存储变为只读，记录无法保存，请联系管理员",
    "error": "数据库写入失败，请联系管理员",
}
# What the caregiver reads on the screen for a reader that is not ready.
READER_PROBLEMS = {"absent": "读卡器未连接", "error": "读卡器故障"}
CAMERA_PROBLEMS = {"absent": "摄像头未连接", "error": "摄像头故障", "stopped": "摄像头已停止"}


@dataclass
class KioskServices:
    config: KioskConfig
    store: Store
    bus: EventBus
    checkin: CheckinService
    readers: ReaderHub
    data_dir: Path
    stopping: threading.Event = field(default_factory=threading.Event)
    # Present only with camera.enabled; card check-in never depends on them.
    camera: Camera | None = None
    face: FaceWorker | None = None
    card_evidence: CardEvidence | None = None  # when face.card_evidence != off
    # The upload jobs' last outcomes while they run; else why they don't (both set by Daemon).
    sync_state: SyncState | None = None
    sync_off_reason: str = ""
    clock_synced: bool | None = None  # from kiosk.runtime.timesync; None = cannot tell
    speaker: Speaker | None = None  # while spoken prompts run (set by Daemon)
    # The short binding window of the card-binding screen (consumed by the tap handler).
    card_binding: CardBinding = field(default_factory=CardBinding)

    def now(self) -> dt.datetime:
        return self.checkin.now()

    def health(self) -> Health:
        """The state a technician and the caregiver need, cheap enough to poll every second."""
        db_ok, db_detail = True, ""
        pending = rejected = None
        try:
            with self.store.read() as session:
                # Rejected records are kept, not queued: they wait for a person, not the uploader.
                pending = session.scalar(
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.uploaded_at.is_(None), Outbox.rejected_reason.is_(None))
                )
                rejected = session.scalar(
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.rejected_reason.is_not(None))
                )
        except SQLAlchemyError as exc:
            db_ok, db_detail = False, str(getattr(exc, "orig", exc))
        try:
            free: int | None = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = None
        storage, storage_detail = self._storage_state(free)
        low_space = free is not None and free < LOW_DISK_BYTES
        db = StorageHealth(db_ok, db_detail, free, storage, storage_detail, low_space)
        readers = {
            name: ReaderHealth(str(s.state), s.detail)
            for name, s in self.readers.statuses().items()
        }
        problems = []
        if not db.ok:
            problems.append("数据库不可用")
        if db.storage != "ok":
            problems.append(STORAGE_PROBLEMS[db.storage])
        elif db.low_space:
            problems.append("存储空间不足")
        problems += [
            f"{READER_PROBLEMS.get(r.state, '读卡器未就绪')}（{name}）"
            for name, r in readers.items()
            if r.state != "ok"
        ]
        camera, face = self._camera_health(), self._face_health()
        if camera.state not in ("disabled", "ok", "starting"):
            problems.append(CAMERA_PROBLEMS.get(camera.state, "摄像头未就绪"))
        if face.state == "error":
            problems.append("刷脸不可用")
        if self.clock_synced is False:
            problems.append("时钟未同步，请检查网络")
        sync = self._sync_health()
        if sync.last_error:
            problems.append("数据上传失败，记录已保存在本机")
        if rejected:
            problems.append(f"{rejected} 条记录被平台退回，请联系管理员")
        problems += self.checkin.evidence_problems()  # chain, signatures, outbox (issue 12)
        # "error" (503) exactly when a check-in cannot be stored now: also a rolled-back chain.
        refusing = not db.writable or self.checkin.rolled_back is not None
        status: OverallStatus = "error" if refusing else ("degraded" if problems else "ok")
        return Health(
            status=status,
            problems=tuple(problems),
            version=__version__,
            device_id=self.config.device.device_id,
            point_id=self.config.site.point_id,
            time=self.now(),
            db=db,
            readers=readers,
            camera=camera,
            face=face,
            queue_depth=pending,
            rejected=rejected,
            sync=sync,
            clock_synchronised=self.clock_synced,
            speaker=self._speaker_health(),
        )

    def _speaker_health(self) -> SpeakerHealth:
        if not self.config.speech.enabled:
            return SpeakerHealth("disabled")
        if self.speaker is None:
            return SpeakerHealth("unknown", "not started")
        status = self.speaker.status()
        return SpeakerHealth(status.state, status.detail, status)

    def _storage_state(self, free: int | None) -> tuple[StorageState, str]:
        """ok | full | read_only | error, and why: from the filesystem now and the last failed
        write. Clears by itself once space is freed or the filesystem is writable again."""
        try:
            read_only = bool(os.statvfs(self.data_dir).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return "read_only", "filesystem mounted read-only"
        failure = self.checkin.storage_failure
        if failure is not None and failure.refusal is Refusal.STORAGE_FULL:
            freed_to = max((failure.free_bytes or 0) + FREED_BYTES, DISK_FULL_BYTES)
            if free is None or free < freed_to:
                return "full", failure.detail
        elif failure is not None and not failure.read_only:
            return "error", failure.detail  # until a check-in is stored again
        if free is not None and free < DISK_FULL_BYTES:
            return "full", f"{free} bytes free"
        return "ok", ""

    def _sync_health(self) -> SyncHealth:
        state = self.sync_state
        if state is None:
            return SyncHealth("off", self.sync_off_reason or "not started")
        return SyncHealth(
            "error" if state.last_error else "ok",
            last_success_at=state.last_success_at,
            last_error=state.last_error,
            roster_version=state.roster_version,
            checkpoint_conflict=state.checkpoint_conflict,
        )

    def _camera_health(self) -> CameraHealth:
        if self.camera is None:
            return CameraHealth("disabled")
        st = self.camera.status()
        return CameraHealth(
            str(st.state),
            st.detail,
            st.fps,
            f"{st.width}x{st.height}" if st.width else None,
            st.frames,
            st.reconnects,
        )

    def _face_health(self) -> FaceHealth:
        if self.face is None:
            return FaceHealth("disabled")
        status = self.face.status()
        return FaceHealth(status.state, status)
