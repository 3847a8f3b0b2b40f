"""What a device may read back of its own evidence (issue 12.8): the newest checkpoint the
platform accepted (signed), so a kiosk can tell that its chain was rolled back; and the
platform's copy of its records, so a technician can restore them (`kiosk recover
--from-platform`). A device sees only its own rows."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from sync.platform.deps import DeviceDep, StateDep
from sync.platform.tables import CheckpointRow, Record
from sync.wire import (
    AckedCheckpoint,
    HeldRecord,
    HeldRecords,
    b64encode,
    checkpoint_ack_message,
    receipt_message,
)

router = APIRouter(tags=["device"])
MAX_HELD_PAGE = 2000


@router.get("/v1/checkpoints/last", response_model=AckedCheckpoint, responses={404: {}})
def last_checkpoint(device: DeviceDep, state: StateDep) -> AckedCheckpoint:
    """The furthest this device's chain ever reached by its own signed checkpoints."""
    with state.sessions() as session:
        top = session.scalar(
            select(func.max(CheckpointRow.seq)).where(CheckpointRow.device_id == device.device_id)
        )
        row = (
            session.scalars(
                select(CheckpointRow)
                .where(CheckpointRow.device_id == device.device_id, CheckpointRow.seq == top)
                .order_by(CheckpointRow.id)
                .limit(1)
            ).first()
            if top is not None
            else None
        )
    if row is None:
        raise HTTPException(404, "no checkpoint from this device yet")
    now = state.clock()
    ack = state.platform_key.sign(
        checkpoint_ack_message(device.device_id, row.seq, row.head_hash, now)
    )
    return AckedCheckpoint(
        device_id=device.device_id,
        seq=row.seq,
        head_hash=row.head_hash,
        server_time=now,
        ack=b64encode(ack),
    )


@router.get("/v1/records/mine", response_model=HeldRecords)
def held_records(
    device: DeviceDep,
    state: StateDep,
    after_seq: int = Query(0, ge=0, le=2**62),
    limit: int = Query(500, ge=1, le=MAX_HELD_PAGE),
) -> HeldRecords:
    """The platform's copy of this device's records after `after_seq`, in seq order."""
    with state.sessions() as session:
        rows = session.scalars(
            select(Record)
            .where(Record.device_id == device.device_id, Record.seq > after_seq)
            .order_by(Record.seq)
            .limit(limit)
        ).all()
    now = state.clock()
    ids = [r.record_id for r in rows]
    receipt = state.platform_key.sign(receipt_message(device.device_id, now, ids))
    return HeldRecords(
        device_id=device.device_id,
        records=[
            HeldRecord(
                seq=r.seq,
                record_id=r.record_id,
                body=r.body,
                prev_hash=r.prev_hash,
                hash=r.hash,
                signature=r.signature,
            )
            for r in rows
        ],
        server_time=now,
        receipt=b64encode(receipt),
    )
