"""GET /metrics: Prometheus text exposition, without a client library.

Counters come from the event bus (every check-in result passes through it); gauges are read
from the database and the devices at scrape time, so they cannot drift from the truth.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from kiosk import __version__
from kiosk.checkin.events import Event
from kiosk.runtime.services import KioskServices
from models.tables import MealRecord, Outbox

# (labels, value) of one line of the exposition; ints are floats to Prometheus.
Sample = tuple[dict[str, object], float]


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checkins: Counter[tuple[str, str]] = Counter()  # (method, outcome)

    def observe(self, event: Event) -> None:
        if event.kind == "checkin":
            with self._lock:
                self.checkins[(str(event.data["method"]), str(event.data["outcome"]))] += 1

    def render(self, services: KioskServices) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[Sample]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{_labels(**labels)} {value}" for labels, value in samples)

        config = services.config
        metric("kiosk_info", "gauge", "Software version and identity.",
               [({"version": __version__, "device_id": config.device.device_id,
                  "point_id": config.site.point_id}, 1)])  # fmt: skip
        with self._lock:
            counts = sorted(self.checkins.items())
        metric("kiosk_checkins_total", "counter", "Check-in results by method and outcome.",
               [({"method": m, "outcome": o}, n) for (m, o), n in counts])  # fmt: skip

        db_up, pending, rejected, failing, oldest_age = 1, 0, 0, 0, 0.0
        try:
            with services.store.read() as s:
                pending, rejected, failing, oldest = s.execute(
                    select(
                        func.count().filter(
                            Outbox.uploaded_at.is_(None), Outbox.rejected_reason.is_(None)
                        ),
                        func.count().filter(Outbox.rejected_reason.is_not(None)),
                        func.count().filter(
                            Outbox.last_error.is_not(None), Outbox.uploaded_at.is_(None)
                        ),
                        func.min(MealRecord.checked_in_at).filter(Outbox.uploaded_at.is_(None)),
                    ).select_from(Outbox).join(MealRecord)
                ).one()  # fmt: skip
            if oldest:
                if isinstance(oldest, str):
                    oldest = dt.datetime.fromisoformat(oldest)
                age = dt.datetime.now(dt.UTC) - oldest
                oldest_age = max(0.0, age.total_seconds())
        except SQLAlchemyError:
            db_up = 0
        metric("kiosk_db_up", "gauge", "1 if the database answers.", [({}, db_up)])
        metric("kiosk_unsent_records", "gauge", "Records not yet acknowledged by the platform.",
               [({}, pending)])  # fmt: skip
        metric("kiosk_oldest_unsent_age_seconds", "gauge", "Age of the oldest unsent record.",
               [({}, round(oldest_age, 1))])  # fmt: skip
        metric("kiosk_rejected_records", "gauge", "Records the platform rejected (kept locally).",
               [({}, rejected)])  # fmt: skip
        metric("kiosk_upload_failing_records", "gauge", "Unsent records whose last upload failed.",
               [({}, failing)])  # fmt: skip
        metric("kiosk_reader_up", "gauge", "1 if the card reader is ready.",
               [({"reader": name}, int(str(st.state) == "ok"))
                for name, st in services.readers.statuses().items()])  # fmt: skip
        health = services.health()
        storage = health.db.storage
        metric("kiosk_storage_writable", "gauge", "1 if a check-in can be stored now.",
               [({}, int(health.db.writable))])  # fmt: skip
        states = ("ok", "full", "read_only", "error")
        metric("kiosk_storage_state", "gauge", "Storage state: ok, full, read_only or error.",
               [({"state": s}, int(s == storage)) for s in states])  # fmt: skip
        if health.db.free_bytes is not None:
            metric("kiosk_disk_free_bytes", "gauge", "Free bytes on the data filesystem.",
                   [({}, health.db.free_bytes)])  # fmt: skip
        metric("kiosk_camera_up", "gauge", "1 if the camera delivers frames (0 if disabled).",
               [({}, int(health.camera.state == "ok"))])  # fmt: skip
        face = health.face.worker
        if face is not None:
            metric("kiosk_face_decision_ms", "summary", "Frame to decision latency.",
                   [({"quantile": q}, ms) for q, ms in
                    (("0.5", face.decision_ms_p50), ("0.99", face.decision_ms_p99))
                    if ms is not None])  # fmt: skip
        return "\n".join(lines) + "\n"
