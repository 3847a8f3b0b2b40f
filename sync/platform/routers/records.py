"""Device uploads: record batches and signed checkpoints."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError

from sync.platform.body import (
    RECORDS_CAP,
    RECORDS_INFLATED_CAP,
    SMALL_CAP,
    body_schema,
    read_model,
)
from sync.platform.completeness import check_device
from sync.platform.deps import DeviceDep, StateDep
from sync.platform.ingest import MAX_SEQ, BatchIngest, store_checkpoint
from sync.platform.receipts import sign_batch, sign_checkpoint
from sync.platform.state import PlatformState
from sync.platform.tables import Device
from sync.wire import BatchResult, Checkpoint, CheckpointResult, RecordBatch

log = logging.getLogger(__name__)
router = APIRouter(tags=["device"])
INGEST_ATTEMPTS = 3
# The device row, held for the batch's transaction (built once: it runs for every batch).
_LOCK_DEVICE = select(Device).where(Device.device_id == bindparam("device_id")).with_for_update()


@router.post(
    "/v1/records",
    response_model=BatchResult,
    openapi_extra=body_schema(RecordBatch, gzip=True),
)
async def upload_records(request: Request, device: DeviceDep, state: StateDep) -> BatchResult:
    batch = await read_model(request, RecordBatch, RECORDS_CAP, RECORDS_INFLATED_CAP)
    if batch.device_id != device.device_id:
        raise HTTPException(403, "batch names another device")
    too_big = [r.seq for r in batch.records if r.seq > MAX_SEQ]
    if too_big:
        raise HTTPException(422, f"seq {too_big[0]} is out of range (at most {MAX_SEQ})")
    return await run_in_threadpool(_ingest, state, device.device_id, batch)


def _ingest(state: PlatformState, device_id: str, batch: RecordBatch) -> BatchResult:
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with state.transaction() as session, session.no_autoflush:
                # No autoflush: the device row's counters and the alerts are written once, at
                # commit (records and claims go by COPY, not through the session).
                locked = session.scalars(_LOCK_DEVICE, {"device_id": device_id}).one()
                result = BatchIngest(session, locked, state.clock(), state.limits).run(batch)
                check_device(session, locked, state.clock(), state.limits)
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
