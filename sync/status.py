"""What `kiosk sync --status` and health show about the outbox, read without side effects."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from models.db import Store
from models.tables import MealRecord, Outbox


@dataclass(frozen=True)
class RejectedRecord:
    record_id: str
    seq: int
    service_date: dt.date
    reason: str


@dataclass(frozen=True)
class SyncStatus:
    pending: int
    uploaded: int
    rejected: list[RejectedRecord]
    last_success_at: dt.datetime | None
    last_error: str | None  # the most recent error still standing on a pending row
    oldest_pending_at: dt.datetime | None


def _instant(value: object) -> dt.datetime:
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return stamp.astimezone(dt.UTC)


def sync_status(store: Store, rejected_limit: int = 50) -> SyncStatus:
    pending_filter = (Outbox.uploaded_at.is_(None), Outbox.rejected_reason.is_(None))
    with store.read() as session:
        pending = session.scalar(select(func.count()).select_from(Outbox).where(*pending_filter))
        uploaded = session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.uploaded_at.is_not(None))
        )
        # max() over ISO text is time order only within one UTC offset. Stamps are UTC now,
        # but older databases mix the site zone (`kiosk sync`) and the system zone (daemon):
        # take the latest text per offset, then compare those as instants.
        per_offset = session.execute(
            select(func.max(Outbox.uploaded_at))
            .where(Outbox.uploaded_at.is_not(None))
            .group_by(func.substr(Outbox.uploaded_at, -6))
        ).scalars()
        stamps = [_instant(v) for v in per_offset if v is not None]
        last_ok = max(stamps) if stamps else None
        last_error = session.scalar(
            select(Outbox.last_error)
            .join(MealRecord, MealRecord.record_id == Outbox.record_id)
            .where(*pending_filter, Outbox.last_error.is_not(None))
            .order_by(MealRecord.seq.desc())
            .limit(1)
        )
        oldest = session.scalar(
            select(MealRecord.checked_in_at)
            .join(Outbox, Outbox.record_id == MealRecord.record_id)
            .where(*pending_filter)
            .order_by(MealRecord.seq)
            .limit(1)
        )
        rejected = [
            RejectedRecord(r.record_id, r.seq, r.service_date, reason or "")
            for r, reason in session.execute(
                select(MealRecord, Outbox.rejected_reason)
                .join(Outbox, Outbox.record_id == MealRecord.record_id)
                .where(Outbox.rejected_reason.is_not(None))
                .order_by(MealRecord.seq)
                .limit(rejected_limit)
            )
        ]
    return SyncStatus(
        pending=pending or 0,
        uploaded=uploaded or 0,
        rejected=rejected,
        last_success_at=last_ok,
        last_error=last_error,
        oldest_pending_at=oldest,
    )
