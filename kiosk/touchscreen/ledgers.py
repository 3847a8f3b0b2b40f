"""The safety ledgers (安监台账) the county requires at every meal point (中民发〔2024〕3号, 四).

- 留样台账 (daily): a sample of each meal's dishes kept in the fridge, by whom, when, and until
  when (at least `SAMPLE_KEEP_HOURS` = 48 h, the national rule for collective meals).
- 安全隐患排查台账 (weekly): building, electricity, gas, fire extinguishers, exits; the problems
  found and what was done about them.

Entered on the touchscreen behind the caregiver PIN; printed per month; summarised in the
heartbeat with the entries of the last days (the platform keeps them by key, so re-sending is
harmless). A second entry for the same day and slot (or the same week) replaces the first: it is
a correction, and the replacement is audited.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select

from kiosk.checkin.schedule import SLOT_LABELS
from kiosk.touchscreen.notices import week_start
from models.db import Store
from models.tables import AuditEvent, Caregiver, FoodSample, SafetyInspection

SAMPLE_KEEP_HOURS = 48
Entry = TypeVar("Entry", FoodSample, SafetyInspection)  # a ledger's one entry per key
# The weekly checklist, in the order a caregiver walks through the building.
INSPECTION_ITEMS = {
    "building": "房屋建筑（墙、顶、地面无裂缝、漏水）",
    "electricity": "供用电（电线、插座、电器无破损、不私拉乱接）",
    "gas": "燃气（灶具、管道、阀门不漏气）",
    "extinguishers": "灭火器（在位、压力正常、未过期）",
    "exits": "安全出口（通道畅通、不堆放杂物）",
}
SHORT_ITEM_LABELS = {
    "building": "房屋建筑",
    "electricity": "供用电",
    "gas": "燃气",
    "extinguishers": "灭火器",
    "exits": "安全出口",
}
CHECK_VALUES = {"ok": "正常", "problem": "有隐患"}
MAX_TEXT = 500
HEARTBEAT_DAYS = 14  # entries of the last two weeks ride along with every heartbeat


class LedgerError(ValueError):
    """A form that cannot be saved; the message is for the caregiver (Chinese)."""


@dataclass(frozen=True)
class SampleEntry:
    service_date: dt.date
    slot: str
    dishes: str
    sample_kept: bool
    caregiver_id: str
    caregiver_name: str
    at: dt.datetime
    note: str

    @property
    def slot_label(self) -> str:
        return SLOT_LABELS.get(self.slot, self.slot)

    @property
    def stored_until(self) -> dt.datetime:
        return self.at + dt.timedelta(hours=SAMPLE_KEEP_HOURS)


@dataclass(frozen=True)
class InspectionEntry:
    week_start: dt.date
    checks: dict[str, str]
    problems: str
    fixed: str
    caregiver_id: str
    caregiver_name: str
    at: dt.datetime

    @property
    def problem_items(self) -> list[str]:
        return [k for k in INSPECTION_ITEMS if self.checks.get(k) == "problem"]

    @property
    def open_problem(self) -> bool:
        """Problems found and nothing written about fixing them."""
        return bool(self.problem_items) and not self.fixed.strip()


@dataclass
class MonthLedger:
    year: int
    month: int
    samples: list[SampleEntry] = field(default_factory=list)
    inspections: list[InspectionEntry] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.year}年{self.month}月"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def days_without_sample(self, served_days: set[dt.date], until: dt.date) -> list[dt.date]:
        """Days with meals served (up to `until`) that have no 留样 entry: gaps in the ledger."""
        have = {s.service_date for s in self.samples if s.sample_kept}
        return sorted(d for d in served_days if d <= until and d not in have)


def _text(value: str, what: str, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise LedgerError(f"请填写{what}")
    if len(value) > MAX_TEXT:
        raise LedgerError(f"{what}太长（最多 {MAX_TEXT} 字）")
    return value


def _audit(session: Any, at: dt.datetime, kind: str, **detail: Any) -> None:
    session.add(AuditEvent(at=at, kind=kind, detail=json.dumps(detail, ensure_ascii=False)))


def _save(
    store: Store,
    model: type[Entry],
    key: dict[str, Any],
    values: dict[str, Any],
    now: dt.datetime,
    audit_kind: str,
    **audit: Any,
) -> None:
    """Write the one entry for `key` (a day's slot, a week): a second entry is a correction
    that replaces the first, is audited as such, and goes up again with the next heartbeat."""
    with store.write() as s:
        row = s.scalar(select(model).filter_by(**key))
        replaced = row is not None
        if row is None:
            row = model(**key)
            s.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        row.uploaded_at = None
        _audit(s, now, audit_kind, **audit, replaced=replaced)


def record_sample(
    store: Store,
    *,
    caregiver_id: str,
    service_date: dt.date,
    slot: str,
    dishes: str,
    at: dt.datetime,
    now: dt.datetime,
    sample_kept: bool = True,
    note: str = "",
    slots: set[str] | None = None,
) -> None:
    """Save the 留样 entry of one slot on one day (replacing an earlier entry of that slot)."""
    if slots is not None and slot not in slots:
        raise LedgerError("请选择餐次")
    dishes = _text(dishes, "菜名", required=True)
    note = _text(note, "备注", required=not sample_kept)
    if at > now + dt.timedelta(minutes=5):
        raise LedgerError("留样时间不能晚于现在")
    _save(
        store,
        FoodSample,
        {"service_date": service_date, "slot": slot},
        {
            "dishes": dishes,
            "sample_kept": sample_kept,
            "note": note,
            "caregiver_id": caregiver_id,
            "at": at,
        },
        now,
        "food_sample",
        date=service_date.isoformat(),
        slot=slot,
        caregiver=caregiver_id,
        kept=sample_kept,
    )


def record_inspection(
    store: Store,
    *,
    caregiver_id: str,
    day: dt.date,
    checks: dict[str, str],
    problems: str,
    fixed: str,
    now: dt.datetime,
) -> None:
    """Save this week's inspection (the week of `day`, from Monday), replacing an earlier one."""
    missing = [SHORT_ITEM_LABELS[k] for k in INSPECTION_ITEMS if checks.get(k) not in CHECK_VALUES]
    if missing:
        raise LedgerError("请逐项选择“正常”或“有隐患”：" + "、".join(missing))
    found = [k for k in INSPECTION_ITEMS if checks[k] == "problem"]
    problems = _text(problems, "发现的问题", required=bool(found))
    fixed = _text(fixed, "整改情况")
    monday = week_start(day)
    body = json.dumps({k: checks[k] for k in INSPECTION_ITEMS})
    _save(
        store,
        SafetyInspection,
        {"week_start": monday},
        {
            "checks": body,
            "problems": problems,
            "fixed": fixed,
            "caregiver_id": caregiver_id,
            "at": now,
        },
        now,
        "safety_inspection",
        week=monday.isoformat(),
        caregiver=caregiver_id,
        problems=found,
    )


def _names(session: Any) -> dict[str, str]:
    return dict(session.execute(select(Caregiver.caregiver_id, Caregiver.name)).all())


def _sample(row: FoodSample, names: dict[str, str]) -> SampleEntry:
    return SampleEntry(
        row.service_date,
        row.slot,
        row.dishes,
        row.sample_kept,
        row.caregiver_id,
        names.get(row.caregiver_id, row.caregiver_id),
        row.at,
        row.note,
    )


def _inspection(row: SafetyInspection, names: dict[str, str]) -> InspectionEntry:
    try:
        checks = json.loads(row.checks or "{}")
    except ValueError:
        checks = {}
    return InspectionEntry(
        row.week_start,
        checks if isinstance(checks, dict) else {},
        row.problems,
        row.fixed,
        row.caregiver_id,
        names.get(row.caregiver_id, row.caregiver_id),
        row.at,
    )


def samples_between(store: Store, first: dt.date, last: dt.date) -> list[SampleEntry]:
    with store.read() as s:
        names = _names(s)
        rows = s.scalars(
            select(FoodSample)
            .where(FoodSample.service_date >= first, FoodSample.service_date <= last)
            .order_by(FoodSample.service_date, FoodSample.at)
        ).all()
        return [_sample(r, names) for r in rows]


def inspections_between(store: Store, first: dt.date, last: dt.date) -> list[InspectionEntry]:
    """Inspections of the weeks that overlap [first, last]."""
    with store.read() as s:
        names = _names(s)
        rows = s.scalars(
            select(SafetyInspection)
            .where(
                SafetyInspection.week_start >= week_start(first),
                SafetyInspection.week_start <= last,
            )
            .order_by(SafetyInspection.week_start)
        ).all()
        return [_inspection(r, names) for r in rows]


def month_ledger(store: Store, year: int, month: int) -> MonthLedger:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return MonthLedger(
        year, month, samples_between(store, first, last), inspections_between(store, first, last)
    )


@dataclass(frozen=True)
class TodayStatus:
    sample_today: bool
    inspection_this_week: bool
    reminders: list[str]


def today_status(store: Store, now: dt.datetime, first_slot_start: dt.time | None) -> TodayStatus:
    """What the check-in view gently reminds of: today's 留样 (once the first meal has begun)
    and this week's inspection (from Thursday on, so there is time to do it)."""
    today = now.date()
    samples = samples_between(store, today, today)
    inspections = inspections_between(store, today, today)
    sample_today = any(s.sample_kept for s in samples)
    inspected = any(i.week_start == week_start(today) for i in inspections)
    reminders = []
    if not sample_today and (first_slot_start is None or now.time() >= first_slot_start):
        reminders.append("今天还没有登记留样，请在“安全台账”里登记")
    if not inspected and today.weekday() >= 3:
        reminders.append("本周安全检查还没有做，请在“安全台账”里登记")
    return TodayStatus(sample_today, inspected, reminders)


def heartbeat_summary(store: Store, now: dt.datetime) -> dict[str, Any]:
    """The ledger part of the heartbeat (sync.wire.SafetyLedger): plain JSON, no names."""
    today = now.date()
    first = today - dt.timedelta(days=HEARTBEAT_DAYS - 1)
    samples = samples_between(store, first, today)
    inspections = inspections_between(store, first, today)
    return {
        "food_sample_today": any(s.service_date == today and s.sample_kept for s in samples),
        "inspection_this_week": any(i.week_start == week_start(today) for i in inspections),
        "open_problems": sum(1 for i in inspections if i.open_problem),
        "food_samples": [
            {
                "service_date": s.service_date,
                "slot": s.slot,
                "dishes": s.dishes,
                "sample_kept": s.sample_kept,
                "sampled_at": s.at,
                "stored_until": s.stored_until,
                "caregiver_id": s.caregiver_id,
                "note": s.note,
            }
            for s in samples
        ],
        "inspections": [
            {
                "week_start": i.week_start,
                "checks": {k: i.checks.get(k, "") for k in INSPECTION_ITEMS},
                "problems": i.problems,
                "fixed": i.fixed,
                "caregiver_id": i.caregiver_id,
                "inspected_at": i.at,
            }
            for i in inspections
        ],
    }
