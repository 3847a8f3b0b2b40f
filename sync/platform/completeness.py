"""Completeness against signed checkpoints (issue 12, point 9).

A signed checkpoint (seq N, head hash) is the device's commitment that records 1..N exist.
The platform keeps, per device, `contiguous_seq` (every seq up to it has been held) and
`held_count` (records ever accepted). A seq at or below both the contiguous mark and a
checkpoint that is no longer in the table was deleted on the platform side: a `hole` alert, at
once. A seq below a checkpoint that never arrived becomes a `hole` too once the checkpoint is
older than the grace period (reconciliation had its chance to re-send it). Fewer rows than
`held_count` raises `records_deleted` even above the contiguous mark. Each alert carries its
evidence: the missing seqs and the signed checkpoint that commits to them.

Runs after every checkpoint of the device (a kiosk pushes one before each upload round and
every minute), on the auditor's device view, and in a periodic sweep over all devices
(deletions make no request of their own).
After a record batch only the contiguous mark moves (advance_after_batch): counting the
device's stored rows after every batch grew with its history, and a batch can only fill holes,
never make one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from sync.platform.ingest import raise_alert
from sync.platform.state import Limits
from sync.platform.tables import Alert, CheckpointRow, Device, Record

log = logging.getLogger(__name__)
EVIDENCE_SEQS = 200  # missing seqs listed in an alert (the count is always exact)
ADVANCE_WINDOW = 10_000  # seqs looked at per call when moving the contiguous mark


# How many seqs the next window above the mark holds, and its top: (count, top). Built once:
# it runs after every batch (statement construction costs more than the query).
_WINDOW = (
    select(Record.seq)
    .where(Record.device_id == bindparam("device_id"), Record.seq > bindparam("mark"))
    .order_by(Record.seq)
    .limit(ADVANCE_WINDOW)
    .subquery()
)
_WINDOW_SPAN = select(func.count(), func.max(_WINDOW.c.seq))
_STORED = select(func.count()).where(Record.device_id == bindparam("device_id"))
_LATEST_CHECKPOINT = (
    select(CheckpointRow)
    .where(CheckpointRow.device_id == bindparam("device_id"))
    .order_by(CheckpointRow.seq.desc(), CheckpointRow.id.desc())
    .limit(1)
)


def advance_contiguous(session: Session, device: Device) -> None:
    """Move `contiguous_seq` up over the seqs now held."""
    mark = device.contiguous_seq or 0
    # The usual case in one aggregate (no rows sent back): the next window of held seqs has
    # no hole, so the mark moves to its top (a batch of 500 used to send 500 seqs here).
    while True:
        count, top = (
            session.connection()
            .execute(_WINDOW_SPAN, {"device_id": device.device_id, "mark": mark})
            .one()
        )
        if not count:  # nothing held above the mark
            device.contiguous_seq = mark
            return
        if top - mark != count:  # a hole in this window: found below, seq by seq
            break
        mark = top
        if count < ADVANCE_WINDOW:
            device.contiguous_seq = mark
            return
    while True:
        seqs = session.scalars(
            select(Record.seq)
            .where(Record.device_id == device.device_id, Record.seq > mark)
            .order_by(Record.seq)
            .limit(ADVANCE_WINDOW)
        ).all()
        moved = False
        for seq in seqs:
            if seq != mark + 1:
                break
            mark, moved = seq, True
        if not moved or len(seqs) < ADVANCE_WINDOW:
            break
    device.contiguous_seq = mark


def advance_after_batch(
    session: Session, device: Device, held_before: int, accepted: list[int]
) -> None:
    """The contiguous mark after a batch (records.py), without a query in the usual case.

    Before the batch every seq up to the mark was held and nothing was ever accepted above it
    when `held_count` equalled the mark (each accepted record is counted once); if the batch's
    accepted seqs (ascending) continue the mark with no hole, the mark moves to the last of
    them. Otherwise the rows are looked at (advance_contiguous). The counting query this
    replaced read every stored seq of the device after every batch, a cost growing with its
    history (docs/scale.md)."""
    mark = device.contiguous_seq or 0
    if (
        accepted
        and held_before == mark
        and accepted[0] == mark + 1
        and accepted[-1] == mark + len(accepted)
    ):
        device.contiguous_seq = accepted[-1]
        return
    if accepted:
        advance_contiguous(session, device)


def _missing(session: Session, device_id: str, upto: int) -> tuple[int, list[int]]:
    """How many seqs 1..upto are not held, and the first few of them."""
    held = (
        session.scalar(
            select(func.count()).where(Record.device_id == device_id, Record.seq <= upto)
        )
        or 0
    )
    count = upto - held
    if count <= 0:
        return 0, []
    present = set(
        session.scalars(
            select(Record.seq).where(Record.device_id == device_id, Record.seq <= upto)
        ).all()
    )
    listed = []
    for seq in range(1, upto + 1):
        if seq not in present:
            listed.append(seq)
            if len(listed) >= EVIDENCE_SEQS:
                break
    return count, listed


def _already_alerted(session: Session, device_id: str, kind: str, detail: str) -> bool:
    return (
        session.scalar(
            select(func.count()).where(
                Alert.device_id == device_id, Alert.kind == kind, Alert.detail == detail
            )
        )
        or 0
    ) > 0


def _checkpoint_evidence(cp: CheckpointRow) -> dict[str, Any]:
    return {
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "made_at": cp.made_at,
        "signature": cp.signature,
        "received_at": cp.received_at,
    }


def check_device(session: Session, device: Device, now: dt.datetime, limits: Limits) -> int:
    """Check one device (row held by the caller); returns the number of alerts raised."""
    dev = device.device_id
    advance_contiguous(session, device)
    raised = 0
    latest = session.scalars(_LATEST_CHECKPOINT, {"device_id": dev}).first()
    stored = session.connection().scalar(_STORED, {"device_id": dev}) or 0
    if stored < (device.held_count or 0):
        detail = f"{device.held_count - stored} of {device.held_count} accepted records are gone"
        if not _already_alerted(session, dev, "records_deleted", detail):
            held: dict[str, Any] = {"held_count": device.held_count, "stored": stored}
            raise_alert(session, device, now, "records_deleted", detail, evidence=held)
            raised += 1
    if latest is None or latest.seq <= 0:
        return raised
    received = dt.datetime.fromisoformat(latest.received_at)
    # Seqs once held (<= contiguous mark) are checked at once; others after the grace period.
    upto = (
        latest.seq
        if now - received >= limits.hole_grace
        else min(latest.seq, device.contiguous_seq)
    )
    if upto <= 0:
        return raised
    count, listed = _missing(session, dev, upto)
    if count:
        committing = (
            session.scalars(
                select(CheckpointRow)
                .where(CheckpointRow.device_id == dev, CheckpointRow.seq >= listed[0])
                .order_by(CheckpointRow.seq, CheckpointRow.id)
                .limit(1)
            ).first()
            or latest
        )
        detail = (
            f"{count} record(s) at or below signed checkpoint seq {committing.seq} are not held "
            f"(first missing seq {listed[0]})"
        )
        if not _already_alerted(session, dev, "hole", detail):
            evidence: dict[str, Any] = {
                "missing_count": count,
                "missing_seqs": listed,
                "contiguous_seq": device.contiguous_seq,
                "held_count": device.held_count,
                "stored": stored,
                "checkpoint": _checkpoint_evidence(committing),
            }
            raise_alert(session, device, now, "hole", detail, seq=listed[0], evidence=evidence)
            raised += 1
    return raised


def sweep(session_factory: Any, now: dt.datetime, limits: Limits) -> int:
    """Check every active device, one transaction each; returns the alerts raised."""
    with session_factory() as session:
        ids = session.scalars(select(Device.device_id).order_by(Device.device_id)).all()
    raised = 0
    for device_id in ids:
        with session_factory() as session, session.begin():
            device = session.scalars(
                select(Device).where(Device.device_id == device_id).with_for_update()
            ).one()
            raised += check_device(session, device, now, limits)
    if raised:
        log.warning("completeness sweep raised %d alert(s)", raised)
    return raised


def evidence_of(alert: Alert) -> dict[str, Any]:
    try:
        value = json.loads(alert.evidence or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
