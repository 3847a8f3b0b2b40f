"""Roaming elders (全城通) on the console's 今日 page: per meal point, the visitors it served
today (外点来客) and its own elders served at other points (本点老人外出就餐), per slot, and the
records behind those numbers.

A visitor meal is what the eating point's terminal recorded with the flag `visitor` (the
elder was not on its roster but on the county card list). Its home point is where the
published rosters carry the elder. So:
- visitors here: today's records at the point flagged `visitor`;
- own elders elsewhere: today's records flagged `visitor` at another point, of elders on this
  point's roster.

Role separation: the caller passes only the points in the viewer's scope. A visitor from
another township is shown to a township operator as the record at his point says it (elder
id, slot, time, method) with the home given only as 「其他乡镇」: the name and home point come
from another township's roster, which is not his to read. Names are masked (王*英) everywhere
on these lists: they are an overview, and the elder id is beside the name.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.platform.deps import Principal
from sync.platform.tables import Device, MealPoint, Record, RosterEntry

VISITOR_LIKE = "%visitor%"
METHOD_LABELS = {"card": "刷卡", "face": "刷脸", "card+face": "刷卡+刷脸", "manual": "人工签到"}
OTHER_TOWNSHIP = "其他乡镇"


def mask_name(name: str) -> str:
    """王秀英 -> 王*英, 王英 -> 王*, 欧阳秀英 -> 欧**英 (as the kiosk masks on its screen)."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


@dataclass
class VisitorCounts:
    """Per slot key ("meal/lunch"): visitors served here, own elders served elsewhere."""

    here: dict[str, int] = field(default_factory=dict)
    away: dict[str, int] = field(default_factory=dict)


def counts(session: Session, point_ids: Sequence[str], day: dt.date) -> dict[str, VisitorCounts]:
    """Both counts for every point given (two grouped queries over the day's records)."""
    out = {p: VisitorCounts() for p in point_ids}
    if not point_ids:
        return out
    here = session.execute(
        select(Device.point_id, Record.service, Record.slot, func.count())
        .join(Device, Device.device_id == Record.device_id)
        .where(
            Record.service_date == day,
            Device.point_id.in_(point_ids),
            Record.flags.like(VISITOR_LIKE),
        )
        .group_by(Device.point_id, Record.service, Record.slot)
    ).all()
    for point_id, service, slot, n in here:
        out[point_id].here[f"{service}/{slot}"] = int(n)
    away = session.execute(
        select(RosterEntry.point_id, Record.service, Record.slot, func.count())
        .join(Device, Device.device_id == Record.device_id)
        .join(RosterEntry, RosterEntry.elder_id == Record.elder_id)
        .where(
            Record.service_date == day,
            RosterEntry.point_id.in_(point_ids),
            Device.point_id != RosterEntry.point_id,
            Record.flags.like(VISITOR_LIKE),
        )
        .group_by(RosterEntry.point_id, Record.service, Record.slot)
    ).all()
    for point_id, service, slot, n in away:
        out[point_id].away[f"{service}/{slot}"] = int(n)
    return out


@dataclass(frozen=True)
class VisitorMeal:
    record_id: str
    elder_id: str
    name: str  # masked; "" when the viewer may not read it
    service: str
    slot: str
    at: str  # HH:MM in the point's zone
    method: str  # label
    manual_reason: str | None
    # Visitors here: the home point; own elders elsewhere: where they ate.
    other_point: str  # point id, or "" when hidden
    other_name: str  # its name, or 「其他乡镇」 / 「未知」
    other_township: str


def _time_and_method(body: str, zone: zoneinfo.ZoneInfo) -> tuple[str, str, str | None]:
    try:
        fields = json.loads(body)
        at = dt.datetime.fromisoformat(fields["checked_in_at"]).astimezone(zone)
        method = str(fields.get("method", ""))
        return f"{at:%H:%M}", METHOD_LABELS.get(method, method), fields.get("reason")
    except (ValueError, KeyError, TypeError):
        return "—", "—", None


def meals(
    session: Session, point: MealPoint, day: dt.date, who: Principal
) -> tuple[list[VisitorMeal], list[VisitorMeal]]:
    """(visitors served at `point` on `day`, its own elders served elsewhere), by time. The
    caller has checked that `point` is in the viewer's scope."""
    try:
        zone = zoneinfo.ZoneInfo(point.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    points = {p.point_id: p for p in session.scalars(select(MealPoint))}

    here_rows = session.execute(
        select(Record.record_id, Record.elder_id, Record.service, Record.slot, Record.body)
        .join(Device, Device.device_id == Record.device_id)
        .where(
            Record.service_date == day,
            Device.point_id == point.point_id,
            Record.flags.like(VISITOR_LIKE),
        )
    ).all()
    homes: dict[str, tuple[str, str]] = {}  # elder -> (home point, name)
    if here_rows:
        for home_pid, elder, name in session.execute(
            select(RosterEntry.point_id, RosterEntry.elder_id, RosterEntry.name)
            .where(RosterEntry.elder_id.in_({r.elder_id for r in here_rows}))
            .where(RosterEntry.point_id != point.point_id)
            .order_by(RosterEntry.point_id)
        ):
            homes.setdefault(elder, (home_pid, name))
    here: list[VisitorMeal] = []
    for rid, elder, service, slot, body in here_rows:
        at, method, reason = _time_and_method(body, zone)
        home_id, name = homes.get(elder, ("", ""))
        home = points.get(home_id)
        if home is None:
            other = ("", "未知", "")
        elif who.sees_township(home.township):
            other = (home.point_id, home.name or home.point_id, home.township)
        else:  # another township's roster: not this viewer's to read
            other, name = ("", OTHER_TOWNSHIP, ""), ""
        here.append(VisitorMeal(rid, elder, mask_name(name), service, slot, at, method, reason,
                                *other))  # fmt: skip

    away_rows = session.execute(
        select(
            Record.record_id,
            Record.elder_id,
            Record.service,
            Record.slot,
            Record.body,
            Device.point_id,
            RosterEntry.name,
        )
        .join(Device, Device.device_id == Record.device_id)
        .join(RosterEntry, RosterEntry.elder_id == Record.elder_id)
        .where(
            Record.service_date == day,
            RosterEntry.point_id == point.point_id,
            Device.point_id != point.point_id,
            Record.flags.like(VISITOR_LIKE),
        )
    ).all()
    away: list[VisitorMeal] = []
    for rid, elder, service, slot, body, where_id, name in away_rows:
        at, method, reason = _time_and_method(body, zone)
        where = points.get(where_id)
        # Where his own elder ate is his to know, even in another township (the settlement
        # names both points of a duplicate); that point's page stays out of his reach.
        other = (where_id, (where.name if where else "") or where_id,
                 where.township if where else "")  # fmt: skip
        away.append(VisitorMeal(rid, elder, mask_name(name), service, slot, at, method, reason,
                                *other))  # fmt: skip
    here.sort(key=lambda m: (m.at, m.elder_id))
    away.sort(key=lambda m: (m.at, m.elder_id))
    return here, away
