"""Reconciliation for a device: per-day counts and heads, and the seqs held for a day."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from sync.platform.deps import DeviceDep, StateDep
from sync.platform.tables import Record
from sync.wire import DayCount, DaySeqs, ReconcileReport

router = APIRouter(tags=["device"])


@router.get("/v1/reconcile", response_model=ReconcileReport)
def reconcile(
    device: DeviceDep,
    state: StateDep,
    date_from: Annotated[dt.date, Query(alias="from")],
    date_to: Annotated[dt.date, Query(alias="to")],
) -> ReconcileReport:
    dev = device.device_id
    with state.sessions() as session:
        rows = session.execute(
            select(Record.service_date, func.count(), func.max(Record.seq))
            .where(
                Record.device_id == dev,
                Record.service_date >= date_from,
                Record.service_date <= date_to,
            )
            .group_by(Record.service_date)
            .order_by(Record.service_date)
        ).all()
        heads = dict(
            session.execute(
                select(Record.seq, Record.hash).where(
                    Record.device_id == dev, Record.seq.in_([r[2] for r in rows])
                )
            ).all()
        )
    days = [
        DayCount(service_date=day, count=count, head_seq=head, head_hash=heads.get(head))
        for day, count, head in rows
    ]
    return ReconcileReport(device_id=dev, days=days, server_time=state.clock())


@router.get("/v1/reconcile/{service_date}/seqs", response_model=DaySeqs)
def day_seqs(device: DeviceDep, state: StateDep, service_date: dt.date) -> DaySeqs:
    with state.sessions() as session:
        seqs = session.scalars(
            select(Record.seq)
            .where(Record.device_id == device.device_id, Record.service_date == service_date)
            .order_by(Record.seq)
        ).all()
    return DaySeqs(service_date=service_date, seqs=list(seqs))
