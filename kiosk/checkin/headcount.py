"""Who has been served in the current slot: the numbers the caregiver watches."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from kiosk.checkin.rules import METHOD_LABELS
from kiosk.checkin.schedule import SlotWindow, current_or_next
from kiosk.config import KioskConfig
from models.db import Store
from models.tables import Elder, MealRecord


@dataclass(frozen=True)
class Served:
    elder_id: str
    name: str
    method: str
    method_label: str
    at: dt.datetime


@dataclass(frozen=True)
class Headcount:
    window: SlotWindow | None
    is_open: bool
    served: int
    recent: list[Served]


def headcount(
    config: KioskConfig, store: Store, now: dt.datetime, service: str = "meal", recent: int = 10
) -> Headcount:
    window = current_or_next(config, service, now)
    if window is None:
        return Headcount(None, False, 0, [])
    in_slot = (
        MealRecord.service == service,
        MealRecord.service_date == window.service_date,
        MealRecord.slot == window.slot,
    )
    with store.read() as session:
        served = session.scalar(select(func.count()).select_from(MealRecord).where(*in_slot)) or 0
        rows = session.execute(
            select(MealRecord.elder_id, Elder.name, MealRecord.method, MealRecord.checked_in_at)
            .join(Elder)
            .where(*in_slot)
            .order_by(MealRecord.seq.desc())
            .limit(recent)
        ).all()
    return Headcount(
        window=window,
        is_open=window.start <= now < window.end,
        served=served,
        recent=[Served(r[0], r[1], r[2], METHOD_LABELS.get(r[2], r[2]), r[3]) for r in rows],
    )
