"""POST /v1/heartbeat: the terminal's status and its safety ledgers."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from sync.platform.body import HEARTBEAT_CAP, body_schema, read_model
from sync.platform.deps import DeviceDep, StateDep
from sync.platform.tables import HeartbeatRow, SafetyEntryRow
from sync.wire import Heartbeat, HeartbeatAck

router = APIRouter(tags=["device"])


@router.post("/v1/heartbeat", response_model=HeartbeatAck, openapi_extra=body_schema(Heartbeat))
async def heartbeat(request: Request, device: DeviceDep, state: StateDep) -> HeartbeatAck:
    hb = await read_model(request, Heartbeat, HEARTBEAT_CAP)
    if hb.device_id != device.device_id:
        raise HTTPException(403, "heartbeat names another device")
    now = state.clock()
    with state.transaction() as session:
        row = session.get(HeartbeatRow, device.device_id)
        if row is None:
            row = HeartbeatRow(device_id=device.device_id)
            session.add(row)
        row.received_at = now.isoformat()
        row.body = hb.model_dump_json()
        if hb.safety is not None:
            _store_safety(session, device.device_id, hb, now)
    return HeartbeatAck(server_time=now)


def _store_safety(session: Session, device_id: str, hb: Heartbeat, now: dt.datetime) -> None:
    """Upsert the ledger entries of a heartbeat by their key (re-sent entries replace)."""
    assert hb.safety is not None
    entries: list[tuple[str, str, BaseModel]] = [
        ("food_sample", f"{e.service_date.isoformat()}/{e.slot}", e) for e in hb.safety.food_samples
    ]
    entries += [("inspection", e.week_start.isoformat(), e) for e in hb.safety.inspections]
    for kind, key, entry in entries:
        row = session.get(SafetyEntryRow, (device_id, kind, key))
        if row is None:
            row = SafetyEntryRow(device_id=device_id, kind=kind, key=key)
            session.add(row)
        row.received_at = now.isoformat()
        row.body = entry.model_dump_json()
