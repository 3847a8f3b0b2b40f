"""The plausibility alerts the platform can compute cheaply from what it holds (issue 14.1).

The tamper alerts (gap, hole, fork, chain break, forged/unknown key...) are raised at ingest and
by the completeness sweep; these are the *behaviour* alerts a county officer looks at:

- `manual_share`: on a day, manual check-ins are a large share of a point's records;
- `flagged_share`: card taps flagged `no_face` / `face_mismatch` are a large share of its taps;
- `clock_unsynced`: records made while the terminal's clock was not synchronised;
- `silent_point`: inside one of the point's serving windows (as its terminals report them in
  the heartbeat; the county default where none is known), no heartbeat from its terminals;
- `notice_not_posted`: after the 10th, no `notice_posted` book entry for last month's 公示;
- `health_overdue`: a caregiver's latest health certificate (book entry `health_check`) expired;
- `safety_overdue`: the terminal's safety ledgers report open problems, or no weekly
  inspection by Thursday.

Each is raised once per point and period (the detail names the period), with its evidence. The
day's shares use one grouped query over the day's records.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from sync.platform.settlement import MANUAL_LIKE
from sync.platform.tables import Alert, BookEntryRow, Device, HeartbeatRow, MealPoint, Record

log = logging.getLogger(__name__)
SITE = zoneinfo.ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Thresholds:
    min_records: int = 10  # a day with fewer records at a point says nothing about shares
    manual_share: float = 0.20
    flagged_share: float = 0.20
    # The serving window the county expects every point to be up in (most serve lunch only).
    serving_start: dt.time = dt.time(11, 0)
    serving_end: dt.time = dt.time(13, 30)
    silent_after: dt.timedelta = dt.timedelta(minutes=30)
    notice_deadline_day: int = 10
    inspection_due_weekday: int = 3  # Thursday: the week's inspection should be written by then


def _raise(session: Session, kind: str, point_id: str, device_id: str, now: dt.datetime,
           detail: str, evidence: dict[str, Any]) -> int:  # fmt: skip
    exists = session.scalar(
        select(func.count()).where(
            Alert.kind == kind, Alert.point_id == point_id, Alert.detail == detail
        )
    )
    if exists:
        return 0
    log.warning("ALERT point %s %s: %s", point_id, kind, detail)
    session.add(
        Alert(
            device_id=device_id, point_id=point_id, at=now.isoformat(timespec="microseconds"),
            kind=kind, seq=None, record_id=None, detail=detail,
            evidence=json.dumps(evidence, ensure_ascii=False, sort_keys=True, default=str),
        )
    )  # fmt: skip
    return 1


def day_shares(session: Session, day: dt.date, now: dt.datetime, th: Thresholds) -> int:
    """Manual, flagged and clock-unsynced records of one day, per point (one grouped query)."""
    flagged = Record.flags.like("%no_face%") | Record.flags.like("%face_mismatch%")
    rows = session.execute(
        select(
            Device.point_id,
            func.min(Device.device_id),
            func.count(),
            func.sum(case((Record.body.like(MANUAL_LIKE), 1), else_=0)),
            func.sum(case((flagged, 1), else_=0)),
            func.sum(case((Record.flags.like("%clock_unsynced%"), 1), else_=0)),
        )
        .join(Device, Device.device_id == Record.device_id)
        .where(Record.service_date == day)
        .group_by(Device.point_id)
    ).all()
    raised = 0
    for point_id, device_id, total, manual_n, flags_n, unsynced_n in rows:
        manual, flags, unsynced = int(manual_n or 0), int(flags_n or 0), int(unsynced_n or 0)
        taps = total - manual
        base = {"day": day.isoformat(), "records": total}
        if total >= th.min_records and manual / total > th.manual_share:
            raised += _raise(
                session, "manual_share", point_id, device_id, now,
                f"{day}: manual check-ins above {th.manual_share:.0%} of records",
                {**base, "manual": manual, "share": round(manual / total, 4),
                 "threshold": th.manual_share},
            )  # fmt: skip
        if taps >= th.min_records and flags / taps > th.flagged_share:
            raised += _raise(
                session, "flagged_share", point_id, device_id, now,
                f"{day}: card taps flagged no_face/face_mismatch above {th.flagged_share:.0%}",
                {**base, "taps": taps, "flagged": flags, "share": round(flags / taps, 4),
                 "threshold": th.flagged_share},
            )  # fmt: skip
        if unsynced:
            ids = session.scalars(
                select(Record.record_id)
                .join(Device, Device.device_id == Record.device_id)
                .where(Record.service_date == day, Device.point_id == point_id,
                       Record.flags.like("%clock_unsynced%"))
                .order_by(Record.device_id, Record.seq)
                .limit(20)
            ).all()  # fmt: skip
            raised += _raise(
                session, "clock_unsynced", point_id, device_id, now,
                f"{day}: records made with the clock not synchronised",
                {**base, "unsynced": unsynced, "record_ids": list(ids)},
            )  # fmt: skip
    return raised


def _active_devices(session: Session) -> dict[str, list[Device]]:
    out: dict[str, list[Device]] = {}
    for d in session.scalars(select(Device).where(Device.status == "active")):
        out.setdefault(d.point_id, []).append(d)
    return out


@dataclass(frozen=True)
class ServingWindow:
    start: dt.time
    end: dt.time
    label: str  # "meal/lunch", or "county default"
    source: str  # "point": reported by the point's terminal; "county_default": Thresholds


def _reported_windows(bodies: list[str]) -> list[ServingWindow]:
    """The serving windows the point's terminals last reported in their heartbeats (validated
    on arrival by the wire model; read defensively: a row from before them has none)."""
    seen: dict[tuple[dt.time, dt.time, str], ServingWindow] = {}
    for body in bodies:
        try:
            slots = json.loads(body).get("serving_slots") or []
            for s in slots:
                w = ServingWindow(
                    dt.time.fromisoformat(s["start"]), dt.time.fromisoformat(s["end"]),
                    f"{s['service']}/{s['slot']}", "point",
                )  # fmt: skip
                seen.setdefault((w.start, w.end, w.label), w)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return sorted(seen.values(), key=lambda w: (w.start, w.label))


def silent_points(session: Session, now: dt.datetime, th: Thresholds) -> int:
    """A point none of whose active terminals was heard for `silent_after` inside one of its
    serving windows: the windows its terminals report (heartbeat `serving_slots`), else the
    county default; the alert names the hours it judged by and where they came from."""
    beats = {h.device_id: h for h in session.scalars(select(HeartbeatRow))}
    zones = {p.point_id: p.timezone for p in session.scalars(select(MealPoint))}
    default = ServingWindow(th.serving_start, th.serving_end, "county default", "county_default")
    raised = 0
    for point_id, devices in _active_devices(session).items():
        try:
            zone = zoneinfo.ZoneInfo(zones.get(point_id) or "Asia/Shanghai")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = SITE
        local = now.astimezone(zone)
        reported = _reported_windows([b.body for d in devices if (b := beats.get(d.device_id))])
        for w in reported or [default]:
            start = dt.datetime.combine(local.date(), w.start, tzinfo=zone)
            end = dt.datetime.combine(local.date(), w.end, tzinfo=zone)
            if not start + th.silent_after <= local <= end:
                continue
            last = max((b.received_at for d in devices if (b := beats.get(d.device_id))),
                       default="")  # fmt: skip
            heard = dt.datetime.fromisoformat(last) if last else None
            if heard is not None and now - heard <= th.silent_after:
                continue
            hours = f"{w.start:%H:%M}-{w.end:%H:%M}"
            where = f"slot {w.label}" if w.source == "point" else "county default"
            raised += _raise(
                session, "silent_point", point_id, devices[0].device_id, now,
                f"{local.date()}: no heartbeat during serving hours ({hours}, {where})",
                {"last_heartbeat": last or None, "checked_at": now.isoformat(),
                 "devices": [d.device_id for d in devices], "serving_hours": hours,
                 "hours_from": w.source, "slot": w.label if w.source == "point" else None},
            )  # fmt: skip
    return raised


def notices_not_posted(session: Session, now: dt.datetime, th: Thresholds) -> int:
    today = now.astimezone(SITE).date()
    if today.day <= th.notice_deadline_day:
        return 0
    last = today.replace(day=1) - dt.timedelta(days=1)
    month = f"{last.year:04d}-{last.month:02d}"
    posted = set(
        session.scalars(
            select(BookEntryRow.point_id).where(
                BookEntryRow.kind == "notice_posted",
                BookEntryRow.body.like(f'%"month":"{month}"%'),
            )
        ).all()
    )
    raised = 0
    for point_id, devices in _active_devices(session).items():
        if point_id in posted:
            continue
        raised += _raise(
            session, "notice_not_posted", point_id, devices[0].device_id, now,
            f"{month}: 公示 not posted by the {th.notice_deadline_day}th",
            {"month": month, "deadline": f"{today:%Y-%m}-{th.notice_deadline_day:02d}"},
        )  # fmt: skip
    return raised


def health_overdue(session: Session, now: dt.datetime) -> int:
    """A caregiver whose newest health certificate at a point has expired."""
    today = now.astimezone(SITE).date()
    latest: dict[tuple[str, str], tuple[dt.date, str, str]] = {}
    for point_id, device_id, body, entry_id in session.execute(
        select(BookEntryRow.point_id, BookEntryRow.device_id, BookEntryRow.body,
               BookEntryRow.entry_id).where(BookEntryRow.kind == "health_check")
    ):  # fmt: skip
        try:
            fields = json.loads(body)
            who, until = str(fields["caregiver_id"]), dt.date.fromisoformat(fields["expires"])
        except (ValueError, KeyError, TypeError):
            continue
        key = (point_id, who)
        if key not in latest or until > latest[key][0]:
            latest[key] = (until, device_id, entry_id)
    raised = 0
    for (point_id, who), (until, device_id, entry_id) in sorted(latest.items()):
        if until < today:
            raised += _raise(
                session, "health_overdue", point_id, device_id, now,
                f"caregiver {who}: health certificate expired {until}",
                {"caregiver_id": who, "expires": until.isoformat(), "entry_id": entry_id},
            )  # fmt: skip
    return raised


def safety_overdue(session: Session, now: dt.datetime, th: Thresholds) -> int:
    local = now.astimezone(SITE)
    week = local.date() - dt.timedelta(days=local.weekday())
    raised = 0
    devices = {d.device_id: d for ds in _active_devices(session).values() for d in ds}
    for beat in session.scalars(select(HeartbeatRow)):
        device = devices.get(beat.device_id)
        safety = json.loads(beat.body).get("safety") if device else None
        if not safety or device is None:
            continue
        problems = []
        if int(safety.get("open_problems", 0)) > 0:
            problems.append(f"{safety['open_problems']} open problem(s)")
        if not safety.get("inspection_this_week") and local.weekday() >= th.inspection_due_weekday:
            problems.append("no weekly inspection yet")
        if problems:
            raised += _raise(
                session, "safety_overdue", device.point_id, device.device_id, now,
                f"week of {week}: " + "; ".join(problems),
                {"week_start": week.isoformat(), "heartbeat_at": beat.received_at,
                 "open_problems": safety.get("open_problems"),
                 "inspection_this_week": safety.get("inspection_this_week")},
            )  # fmt: skip
    return raised


def sweep(
    sessions: sessionmaker[Session],
    now: dt.datetime,
    th: Thresholds | None = None,
    days: list[dt.date] | None = None,
) -> int:
    """Every oversight check in one transaction. The shares are judged on whole days: by
    default yesterday's (the daily sweep), or the `days` given (a re-run, the tests)."""
    th = th or Thresholds()
    today = now.astimezone(SITE).date()
    with sessions() as session, session.begin():
        raised = 0
        for day in days or [today - dt.timedelta(days=1)]:
            raised += day_shares(session, day, now, th)
        raised += silent_points(session, now, th)
        raised += notices_not_posted(session, now, th)
        raised += health_overdue(session, now)
        raised += safety_overdue(session, now, th)
    if raised:
        log.warning("oversight sweep raised %d alert(s)", raised)
    return raised
