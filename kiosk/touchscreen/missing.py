"""Who is missing: regular diners who have not come yet for the current meal.

A regular ate at least N of the last M service days of this slot (days on which anybody was
served it, before today; config `ui.missing_min_days` / `ui.missing_of_last`). For an elder who
lives alone a missed lunch is a welfare signal, so the caregiver gets the village group and the
family contact's phone to call or visit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import distinct, func, select

from kiosk.checkin.schedule import SlotWindow, current_or_next
from kiosk.config import KioskConfig
from models.db import Store
from models.tables import Elder, MealRecord


@dataclass(frozen=True)
class MissingElder:
    elder_id: str
    name: str
    group_name: str
    contact_phone: str
    days_eaten: int  # of the service days looked at
    last_seen: dt.date | None


@dataclass(frozen=True)
class MissingReport:
    window: SlotWindow | None
    min_days: int
    of_last: int
    service_days: list[dt.date]  # the days looked at, newest first
    regulars: int
    missing: list[MissingElder]


def missing_diners(
    config: KioskConfig,
    store: Store,
    now: dt.datetime,
    min_days: int | None = None,
    of_last: int | None = None,
    service: str = "meal",
) -> MissingReport:
    min_days = min_days or config.ui.missing_min_days
    of_last = of_last or config.ui.missing_of_last
    window = current_or_next(config, service, now)
    if window is None:
        return MissingReport(None, min_days, of_last, [], 0, [])
    same_slot = (MealRecord.service == service, MealRecord.slot == window.slot)
    with store.read() as session:
        days = list(
            session.scalars(
                select(MealRecord.service_date)
                .distinct()
                .where(*same_slot, MealRecord.service_date < window.service_date)
                .order_by(MealRecord.service_date.desc())
                .limit(of_last)
            )
        )
        if not days:
            return MissingReport(window, min_days, of_last, [], 0, [])
        eaten = func.count(distinct(MealRecord.service_date))
        regular_rows = session.execute(
            select(MealRecord.elder_id, eaten, func.max(MealRecord.service_date))
            .where(*same_slot, MealRecord.service_date.in_(days))
            .group_by(MealRecord.elder_id)
            .having(eaten >= min_days)
        ).all()
        served_now = set(
            session.scalars(
                select(MealRecord.elder_id).where(
                    *same_slot, MealRecord.service_date == window.service_date
                )
            )
        )
        stats = {r[0]: (int(r[1]), r[2]) for r in regular_rows}
        elders = session.scalars(
            select(Elder).where(Elder.elder_id.in_(stats), Elder.status == "active")
        ).all()
    missing = [
        MissingElder(e.elder_id, e.name, e.group_name, e.contact_phone, *stats[e.elder_id])
        for e in elders
        if e.elder_id not in served_now
    ]
    missing.sort(key=lambda m: (m.group_name, m.last_seen or dt.date.min, m.name))
    return MissingReport(window, min_days, of_last, days, len(elders), missing)
