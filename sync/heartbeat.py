"""The heartbeat: how this terminal is doing, for the county's dashboard.

Counts and states only: no names, no face data, no images (the wire model has no place for them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from models.db import Store
from models.records import chain_head
from models.tables import MealRecord, Outbox
from sync.wire import Heartbeat, Location, SafetyLedger, ServingSlot


@dataclass(frozen=True)
class HeartbeatExtras:
    """What only the daemon knows (readers, camera, who is on duty); supplied by a callable."""

    caregivers_on_duty: list[str] = field(default_factory=list)
    readers: dict[str, str] = field(default_factory=dict)
    camera: str = "unknown"
    # The safety ledgers (sync.wire.SafetyLedger as plain data), or None to send none.
    safety: dict[str, Any] | None = None
    # The point's serving windows: (service, slot, start, end) in local time, from config.
    serving_slots: Sequence[tuple[str, str, dt.time, dt.time]] = ()


def build_heartbeat(
    store: Store,
    device_id: str,
    now: dt.datetime,
    *,
    software_version: str,
    location: tuple[float, float] | None = None,
    clock_offset_s: float | None = None,
    extras: Callable[[], HeartbeatExtras] | None = None,
) -> Heartbeat:
    pending = (Outbox.uploaded_at.is_(None), Outbox.rejected_reason.is_(None))
    with store.read() as session:
        head_seq, _ = chain_head(session)
        queue = session.scalar(select(func.count()).select_from(Outbox).where(*pending)) or 0
        rejected = (
            session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.rejected_reason.is_not(None))
            )
            or 0
        )
        oldest = session.scalar(
            select(func.min(MealRecord.checked_in_at))
            .join(Outbox, Outbox.record_id == MealRecord.record_id)
            .where(*pending)
        )
        today = now.date()
        counts = session.execute(
            select(MealRecord.service, MealRecord.slot, func.count())
            .where(MealRecord.service_date == today)
            .group_by(MealRecord.service, MealRecord.slot)
        ).all()
    more = extras() if extras else HeartbeatExtras()
    # min() over ISO text is the earliest only for one offset; the kiosk writes one zone.
    oldest_dt = dt.datetime.fromisoformat(oldest) if isinstance(oldest, str) else oldest
    return Heartbeat(
        device_id=device_id,
        sent_at=now,
        software_version=software_version,
        location=Location(latitude=location[0], longitude=location[1]) if location else None,
        caregivers_on_duty=more.caregivers_on_duty,
        headcount={f"{service}/{slot}": n for service, slot, n in counts},
        queue_depth=queue,
        rejected=rejected,
        oldest_unsent_age_s=(now - oldest_dt).total_seconds() if oldest_dt else None,
        clock_offset_s=clock_offset_s,
        readers=more.readers,
        camera=more.camera,
        chain_head_seq=head_seq,
        safety=SafetyLedger.model_validate(more.safety) if more.safety is not None else None,
        serving_slots=[
            ServingSlot.model_validate({"service": sv, "slot": sl, "start": a, "end": b})
            for sv, sl, a, b in more.serving_slots
        ],
    )
