"""Device uploads: record batches and signed checkpoints."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from sync.platform.body import (
    RECORDS_CAP,
    RECORDS_INFLATED_CAP,
    SMALL_CAP,
    body_schema,
    read_model,
)
from sync.platform.completeness import advance_after_batch, check_device
from sync.platform.deps import DeviceDep, StateDep, UploadAuth, UploadDep
from sync.platform.ingest import MAX_SEQ, BatchIngest, store_checkpoint, zone_named
from sync.platform.receipts import sign_batch, sign_checkpoint
from sync.platform.state import PlatformState
from sync.platform.tables import Device, MealPoint
from sync.wire import BatchResult, Checkpoint, CheckpointResult, RecordBatch

log = logging.getLogger(__name__)
router = APIRouter(tags=["device"])
INGEST_ATTEMPTS = 3
# The device row, held for the batch's transaction, with its point's zone: columns, not an ORM
# object (loading and flushing one cost ~0.5 ms a batch), built once (it runs for every batch).
_LOCK_DEVICE = (
    select(
        Device.point_id,
        Device.token_sha256,
        Device.status,
        Device.public_key,
        Device.enrolled_with,
        Device.contiguous_seq,
        Device.held_count,
        MealPoint.timezone,
    )
    .outerjoin(MealPoint, MealPoint.point_id == Device.point_id)
    .where(Device.device_id == bindparam("device_id"))
    .with_for_update(of=Device)
)
_COUNTERS = (
    update(Device)
    .where(Device.device_id == bindparam("device"))
    .values(contiguous_seq=bindparam("mark"), held_count=bindparam("held"))
)


@router.post(
    "/v1/records",
    response_model=BatchResult,
    openapi_extra=body_schema(RecordBatch, gzip=True),
)
async def upload_records(request: Request, auth: UploadDep, state: StateDep) -> Response:
    batch = await read_model(request, RecordBatch, RECORDS_CAP, RECORDS_INFLATED_CAP)
    if batch.device_id != auth.device_id:
        raise HTTPException(403, "batch names another device")
    too_big = [r.seq for r in batch.records if r.seq > MAX_SEQ]
    if too_big:
        raise HTTPException(422, f"seq {too_big[0]} is out of range (at most {MAX_SEQ})")
    result = await run_in_threadpool(_ingest, state, auth, batch)
    # Serialised once: FastAPI would dump the model to a dict, validate it again against
    # response_model, then serialise it (the same JSON).
    return Response(result.model_dump_json(), media_type="application/json")


def _ingest(state: PlatformState, auth: UploadAuth, batch: RecordBatch) -> BatchResult:
    device_id = auth.device_id
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with state.transaction() as session, session.no_autoflush:
                # No autoflush: the alerts are written once, at commit (records and claims go
                # by COPY, the device's counters by one UPDATE, none through the session).
                device, timezone = _lock(session, state, auth)
                held_before, mark_before = device.held_count, device.contiguous_seq
                zone = zone_named(timezone)
                ingest = BatchIngest(session, device, state.clock(), state.limits, zone)
                result = ingest.run(batch)
                # The contiguous mark moves here; deletions and holes are checked on the
                # checkpoint pushed before each upload round and by the sweep (completeness.py).
                advance_after_batch(session, device, held_before, ingest.accepted_seqs)
                if (device.contiguous_seq, device.held_count) != (mark_before, held_before):
                    session.connection().execute(
                        _COUNTERS,
                        {"device": device_id, "mark": device.contiguous_seq,
                         "held": device.held_count},
                    )  # fmt: skip
            log.info(
                "device %s: %d accepted, %d duplicate, %d rejected",
                device_id,
                len(result.accepted),
                len(result.duplicate),
                len(result.rejected),
            )
            return sign_batch(state.platform_key, device_id, result)  # the kiosk's receipt
        except (IntegrityError, OperationalError) as exc:
            # A concurrent copy of the same batch (resend while the first is in flight) won
            # the race; a retry sees its rows as duplicates.
            log.warning("ingest attempt %d for %s failed: %s", attempt, device_id, exc.orig)
    raise HTTPException(503, "busy, retry later", headers={"Retry-After": "5"})


def _lock(session: Session, state: PlatformState, auth: UploadAuth) -> tuple[Device, str | None]:
    """Lock the device row and check the token against it (upload_device_of may have answered
    from its memo): a device retired or re-keyed since is refused here, as device_of would.
    A detached Device for the checks (columns, not an ORM load) and its point's zone name."""
    row = session.connection().execute(_LOCK_DEVICE, {"device_id": auth.device_id}).first()
    if row is None or row.token_sha256 != auth.token_sha256:
        state.device_tokens.pop(auth.token_sha256, None)
        raise HTTPException(401, "unknown device token")
    if row.status != "active":
        state.device_tokens.pop(auth.token_sha256, None)
        raise HTTPException(401, f"device {auth.device_id} is {row.status}")
    point, _token, status, public_key, enrolled_with, mark, held, timezone = row
    device = Device(
        device_id=auth.device_id, point_id=point, status=status, public_key=public_key,
        enrolled_with=enrolled_with, contiguous_seq=mark or 0, held_count=held or 0,
    )  # fmt: skip
    return device, timezone


@router.post(
    "/v1/checkpoints", response_model=CheckpointResult, openapi_extra=body_schema(Checkpoint)
)
async def checkpoint(request: Request, device: DeviceDep, state: StateDep) -> CheckpointResult:
    cp = await read_model(request, Checkpoint, SMALL_CAP)
    if cp.seq > MAX_SEQ:
        raise HTTPException(422, f"seq {cp.seq} is out of range (at most {MAX_SEQ})")
    return await run_in_threadpool(_checkpoint, state, device.device_id, cp)


def _checkpoint(state: PlatformState, device_id: str, cp: Checkpoint) -> CheckpointResult:
    with state.transaction() as session:
        locked = session.scalars(
            select(Device).where(Device.device_id == device_id).with_for_update()
        ).one()
        result = store_checkpoint(session, locked, cp, state.clock())
        if result is not None:
            check_device(session, locked, state.clock(), state.limits)
    if result is None:
        raise HTTPException(400, "checkpoint signature does not verify")
    return sign_checkpoint(state.platform_key, cp, result)  # the kiosk's rollback guard
