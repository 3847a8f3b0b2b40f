"""The running parts of a kiosk that the web app and the CLI share, built by kiosk.app."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hardware.camera import Camera
from kiosk import __version__
from kiosk.card_binding import CardBinding
from kiosk.checkin import CheckinService
from kiosk.config import KioskConfig
from kiosk.devices import ReaderHub
from kiosk.events import EventBus
from kiosk.face_worker import FaceWorker
from models.db import Store
from models.tables import Outbox

log = logging.getLogger(__name__)

LOW_DISK_BYTES = 64 * 1024 * 1024
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
    card_evidence: Any = None  # kiosk.card_evidence.CardEvidence when face.card_evidence != off
    # sync.scheduler.SyncState while uploads run, else the reason they don't (set by Daemon).
    sync_state: Any = None
    clock_synced: bool | None = None  # from kiosk.timesync; None = cannot tell
    speaker: Any = None  # hardware.speaker.Speaker while spoken prompts run (set by Daemon)
    # The short binding window of the card-binding screen (consumed by the tap handler).
    card_binding: CardBinding = field(default_factory=CardBinding)

    def now(self) -> dt.datetime:
        return self.checkin.now()

    def health(self) -> dict[str, Any]:
        """The state a technician and the caregiver need, cheap enough to poll every second."""
        db: dict[str, Any] = {"ok": True, "detail": ""}
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
            db = {"ok": False, "detail": str(getattr(exc, "orig", exc))}
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = None
        db["free_bytes"] = free
        readers = {
            name: {"state": str(s.state), "detail": s.detail}
            for name, s in self.readers.statuses().items()
        }
        problems = []
        if not db["ok"]:
            problems.append("数据库不可用")
        if free is not None and free < LOW_DISK_BYTES:
            problems.append("存储空间不足")
        problems += [
            f"{READER_PROBLEMS.get(r['state'], '读卡器未就绪')}（{name}）"
            for name, r in readers.items()
            if r["state"] != "ok"
        ]
        camera, face = self._camera_health(), self._face_health()
        if camera["state"] not in ("disabled", "ok", "starting"):
            problems.append(CAMERA_PROBLEMS.get(camera["state"], "摄像头未就绪"))
        if face["state"] == "error":
            problems.append("刷脸不可用")
        if self.clock_synced is False:
            problems.append("时钟未同步，请检查网络")
        sync = self._sync_health()
        if sync.get("last_error"):
            problems.append("数据上传失败，记录已保存在本机")
        if rejected:
            problems.append(f"{rejected} 条记录被平台退回，请联系管理员")
        return {
            "status": "error" if not db["ok"] else ("degraded" if problems else "ok"),
            "problems": problems,
            "version": __version__,
            "device_id": self.config.device.device_id,
            "point_id": self.config.site.point_id,
            "time": self.now().isoformat(),
            "db": db,
            "readers": readers,
            "camera": camera,
            "face": face,
            "queue_depth": pending,
            "rejected": rejected,
            "sync": sync,
            "clock_synchronised": self.clock_synced,
            "speaker": self._speaker_health(),
        }

    def _speaker_health(self) -> dict[str, Any]:
        if not self.config.speech.enabled:
            return {"state": "disabled"}
        if self.speaker is None:
            return {"state": "unknown", "detail": "not started"}
        return dict(self.speaker.status())

    def _sync_health(self) -> dict[str, Any]:
        state = self.sync_state
        if state is None or isinstance(state, str):
            return {"state": "off", "detail": state or "not started"}
        last = state.last_success_at
        return {
            "state": "error" if state.last_error else "ok",
            "last_success_at": last.isoformat() if last else None,
            "last_error": state.last_error,
            "roster_version": state.roster_version,
            "checkpoint_conflict": state.checkpoint_conflict,
        }

    def _camera_health(self) -> dict[str, Any]:
        if self.camera is None:
            return {"state": "disabled"}
        st = self.camera.status()
        return {
            "state": str(st.state),
            "detail": st.detail,
            "fps": st.fps,
            "resolution": f"{st.width}x{st.height}" if st.width else None,
            "frames": st.frames,
            "reconnects": st.reconnects,
        }

    def _face_health(self) -> dict[str, Any]:
        if self.face is None:
            return {"state": "disabled"}
        return self.face.status()
