"""The village's books: POST /v1/books (a device's entries) and the county's read of them,
GET /v1/admin/points/{point_id}/books?month=YYYY-MM (administrator, or the township's operator)."""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from sync.platform.body import SMALL_CAP, body_schema, read_model
from sync.platform.book_ingest import book_head, ingest_books
from sync.platform.deps import DeviceDep, PrincipalDep, StateDep, point_in_scope
from sync.platform.state import PlatformState
from sync.platform.tables import BookEntryRow, Device
from sync.wire import BatchResult, BookBatch, BooksHead

router = APIRouter(tags=["books"])
BOOKS_CAP = 64 * SMALL_CAP  # 1 MiB: 500 entries of up to ~2 KB


@router.post("/v1/books", response_model=BatchResult, openapi_extra=body_schema(BookBatch))
async def upload_books(request: Request, device: DeviceDep, state: StateDep) -> BatchResult:
    batch = await read_model(request, BookBatch, BOOKS_CAP)
    if batch.device_id != device.device_id:
        raise HTTPException(403, "batch names another device")
    return await run_in_threadpool(_ingest, state, device.device_id, batch)


def _ingest(state: PlatformState, device_id: str, batch: BookBatch) -> BatchResult:
    with state.transaction() as session:
        # One batch of a device at a time: the chain head is read and extended in one go.
        locked = session.scalars(
            select(Device).where(Device.device_id == device_id).with_for_update()
        ).one()
        return ingest_books(session, locked, batch, state.clock(), state.platform_key)


@router.get("/v1/books/head", response_model=BooksHead)
def books_head(device: DeviceDep, state: StateDep) -> BooksHead:
    """How far this device's books reach here: the kiosk re-sends what the platform lacks."""
    with state.sessions() as session:
        seq, head = book_head(session, device.device_id)
    return BooksHead(seq=seq, hash=head)


@router.get("/v1/admin/points/{point_id}/books")
def point_books(
    point_id: str,
    who: PrincipalDep,
    state: StateDep,
    month: str = Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
) -> list[dict[str, Any]]:
    """Every entry of the month at this point, superseded ones included (the audit view)."""
    point_in_scope(state, who, point_id)
    year, mon = int(month[:4]), int(month[5:])
    first = dt.date(year, mon, 1)
    last = dt.date(year, mon, calendar.monthrange(year, mon)[1])
    with state.sessions() as session:
        rows = session.scalars(
            select(BookEntryRow)
            .where(
                BookEntryRow.point_id == point_id,
                BookEntryRow.entry_date >= first,
                BookEntryRow.entry_date <= last,
            )
            .order_by(BookEntryRow.device_id, BookEntryRow.seq)
        ).all()
    superseded = {r.corrects for r in rows if r.corrects}
    return [
        {
            "entry_id": r.entry_id,
            "device_id": r.device_id,
            "seq": r.seq,
            "kind": r.kind,
            "entry_date": r.entry_date.isoformat(),
            "body": json.loads(r.body),
            "corrects": r.corrects,
            "superseded": r.entry_id in superseded,
            "caregiver_id": r.caregiver_id,
            "received_at": r.received_at,
        }
        for r in rows
    ]
