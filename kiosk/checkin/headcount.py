"""Who has been served in the current slot: the numbers the caregiver watches."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, literal, select

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
    visitor: bool = False  # an elder of another point (roaming, 全城通)


@dataclass(frozen=True)
class Headcount:
    window: SlotWindow | None
    is_open: bool
    served: int  # everyone served in the slot: this point's elders and visitors
    recent: list[Served]
    visitors: int = 0  # of `served`, elders of other points (flag "visitor")
    roaming: bool = False  # this point accepts visitors: the split is shown even at 0

    @property
    def local(self) -> int:
        return self.served - self.visitors


def headcount(
    config: KioskConfig, store: Store, now: dt.datetime, service: str = "meal", recent: int = 10
) -> Headcount:
    window = current_or_next(config, service, now)
    if window is None:
        return Headcount(None, False, 0, [], roaming=config.roaming.accept_visitors)
    in_slot = (
        MealRecord.service == service,
        MealRecord.service_date == window.service_date,
        MealRecord.slot == window.slot,
    )
    # flags is a sorted comma-joined set: match the whole word, not a substring of another flag.
    is_visitor = (literal(",") + MealRecord.flags + literal(",")).like("%,visitor,%")
    with store.read() as session:
        served, visitors = session.execute(
            select(func.count(), func.count().filter(is_visitor)).where(*in_slot)
        ).one()
        rows = session.execute(
            select(
                MealRecord.elder_id,
                Elder.name,
                MealRecord.method,
                MealRecord.checked_in_at,
                is_visitor,
            )
            .join(Elder)
            .where(*in_slot)
            .order_by(MealRecord.seq.desc())
            .limit(recent)
        ).all()
    return Headcount(
        window=window,
        is_open=window.start <= now < window.end,
        served=served or 0,
        recent=[
            Served(r[0], r[1], r[2], METHOD_LABELS.get(r[2], r[2]), r[3], bool(r[4])) for r in rows
        ],
        visitors=visitors or 0,
        roaming=config.roaming.accept_visitors,
    )
