"""Per-day reconciliation: compare counts with the platform, re-send what it does not hold.

Counts alone cannot say *which* record is missing (the failing of attendance-terminal protocols
without record ids), so a day whose count or head differs is followed by the list of seqs the
platform holds for it, and exactly the acknowledged-but-missing rows go back to pending.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from models.db import Store
from models.tables import AuditEvent, MealRecord, Outbox
from sync.client import PlatformClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayDiff:
    service_date: dt.date
    local: int  # acknowledged records of that day on the kiosk
    platform: int
    resent: int  # rows put back to pending


@dataclass(frozen=True)
class ReconcileResult:
    days_checked: int
    differing: list[DayDiff] = field(default_factory=list)

    @property
    def resent(self) -> int:
        return sum(d.resent for d in self.differing)


def _local_days(
    store: Store, date_from: dt.date, date_to: dt.date
) -> dict[dt.date, tuple[int, int, str]]:
    """Per day: (acknowledged count, head seq, head hash) of records the platform confirmed."""
    with store.read() as session:
        rows = session.execute(
            select(MealRecord.service_date, func.count(), func.max(MealRecord.seq))
            .join(Outbox, Outbox.record_id == MealRecord.record_id)
            .where(
                Outbox.uploaded_at.is_not(None),
                MealRecord.service_date >= date_from,
                MealRecord.service_date <= date_to,
            )
            .group_by(MealRecord.service_date)
        ).all()
        heads = dict(
            session.execute(
                select(MealRecord.seq, MealRecord.hash).where(
                    MealRecord.seq.in_([r[2] for r in rows])
                )
            ).all()
        )
    return {day: (count, head, heads[head]) for day, count, head in rows}


def reconcile(
    store: Store,
    client: PlatformClient,
    date_from: dt.date,
    date_to: dt.date,
    now: dt.datetime,
) -> ReconcileResult:
    """Check every service day in [date_from, date_to]; raises PlatformError on failure."""
    local = _local_days(store, date_from, date_to)
    report = client.reconcile(date_from, date_to)
    remote = {d.service_date: d for d in report.days}
    diffs: list[DayDiff] = []
    for day, (count, head_seq, head_hash) in sorted(local.items()):
        theirs = remote.get(day)
        if theirs is not None and (theirs.count, theirs.head_seq, theirs.head_hash) == (
            count,
            head_seq,
            head_hash,
        ):
            continue
        if theirs is not None and theirs.head_seq == head_seq and theirs.head_hash != head_hash:
            log.error("%s: the platform holds a different record at seq %d", day, head_seq)
        held = set(client.day_seqs(day).seqs)
        resent = _requeue_missing(store, day, held, now)
        diffs.append(DayDiff(day, count, theirs.count if theirs else 0, resent))
        log.warning(
            "%s: platform holds %d of %d acknowledged records; %d re-queued",
            day, theirs.count if theirs else 0, count, resent,
        )  # fmt: skip
    return ReconcileResult(days_checked=len(local), differing=diffs)


def _requeue_missing(store: Store, day: dt.date, held: set[int], now: dt.datetime) -> int:
    with store.write() as session:
        missing = [
            rid
            for rid, seq in session.execute(
                select(MealRecord.record_id, MealRecord.seq)
                .join(Outbox, Outbox.record_id == MealRecord.record_id)
                .where(MealRecord.service_date == day, Outbox.uploaded_at.is_not(None))
            )
            if seq not in held
        ]
        for start in range(0, len(missing), 500):
            session.execute(
                update(Outbox)
                .where(Outbox.record_id.in_(missing[start : start + 500]))
                .values(uploaded_at=None, last_error="reconciliation: missing on the platform")
            )
        if missing:
            session.add(
                AuditEvent(
                    at=now,
                    kind="sync_reconcile",
                    detail=json.dumps({"service_date": day.isoformat(), "requeued": len(missing)}),
                )
            )
    return len(missing)
