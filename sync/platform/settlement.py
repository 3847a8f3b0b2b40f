"""The monthly settlement (月结算): what the county pays per meal point and per elder.

A record of the month is **subsidised** when it is the first clean record of its elder, service,
slot and day county-wide; everything else is an **exception**, listed separately for the county
to decide on (never paid automatically):

- `ineligible`: the elder's status on the published roster of the point (or, for an elder not on
  that point's roster, on every roster of the county) is not 在册 (suspended, deceased, moved...);
- `not_on_roster`: the elder is on no published roster of the county;
- `manual`: a caregiver's manual check-in (its reason and caregiver are listed);
- `flagged`: a card tap flagged `no_face` / `face_mismatch` by the kiosk's face check;
- `duplicate`: a second record of the same elder, service, slot and day (at another point, or
  a second terminal): the clean record the platform received first is subsidised;
- `late`: a record of an already closed month that arrived after the close; it lands in the
  exceptions of the next month that is closed after it arrived, exactly once.

Amounts are exact `Decimal`: the rate in force on the record's day (per service and slot, from
`subsidy_rate`, history kept) times the count. Both run on SQLite and PostgreSQL.

`compute` reads `meal_claim`, the narrow copy of the records ingest keeps (tables.MealClaim): the
uncontested claims of the month are counted in one grouped query (no ranking: ingest already
found that nobody else claimed the slot), the roster and signature judged per group; only the
few contested slots (a second clean record) and the manual/flagged records are ranked, exactly
as `compute_from_records` ranks every record of the month over the wide `record` table (kept:
the benchmark measures both side by side and a test checks they agree).

Closing a month (administrator) stores the lines and exceptions as they are at that moment and
signs the canonical document with the platform key; a closed month is read back from those
rows, never recomputed.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from sync.platform.ingest import CLEAN, FLAGGED, LATE, MANUAL
from sync.platform.tables import (
    Device,
    MealClaim,
    MealPoint,
    Record,
    RosterEntry,
    SettlementException,
    SettlementLine,
    SettlementMonth,
    SubsidyRate,
)
from sync.wire import b64encode, verify

SERVICE_LABELS = {"meal": "助餐", "cleaning": "助洁"}
SLOT_LABELS = {"breakfast": "早餐", "lunch": "午餐", "dinner": "晚餐", "day": "全天", "*": "全部"}
EXCEPTION_LABELS = {
    "ineligible": "名册状态非在册",
    "not_on_roster": "不在名册",
    "manual": "人工签到",
    "flagged": "刷卡未见本人",
    "duplicate": "同餐次重复",
    "late": "结账后到达",
    "unverified": "设备签名未验证",
}
STATUS_LABELS = {
    "active": "在册",
    "suspended": "暂停",
    "deceased": "已故",
    "moved": "迁出",
    "removed": "移除",
}
CENT = Decimal("0.01")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
AMOUNT_RE = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,2})?$")
IN_CHUNK = 5000  # ids per IN (...): SQLite allows 32766 bound parameters
MANUAL_LIKE = '%"method":"manual"%'  # bodies are canonical JSON (sorted keys, no spaces)


class SettlementError(ValueError):
    """A month or a rate that cannot be used, with what was wrong (shown to the user)."""


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of "YYYY-MM"; SettlementError otherwise."""
    m = MONTH_RE.match(month or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise SettlementError(f"月份格式应为 YYYY-MM：{month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    return dt.date(year, mon, 1), dt.date(year, mon, calendar.monthrange(year, mon)[1])


def parse_amount(text: str) -> Decimal:
    """A rate in yuan as written on paper: digits, at most 2 decimals, below 10,000."""
    value = (text or "").strip()
    if not AMOUNT_RE.match(value):
        raise SettlementError(f"金额须为 0 到 9999.99 之间、最多两位小数的数字：{text!r}")
    return Decimal(value).quantize(CENT)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Line:
    point_id: str
    elder_id: str
    elder_name: str
    service: str
    slot: str
    rate: Decimal | None  # None: no rate configured for that day (amount 0, listed)
    count: int
    amount: Decimal


@dataclass(frozen=True)
class ExceptionItem:
    record_id: str
    point_id: str
    elder_id: str
    elder_name: str
    service: str
    slot: str
    service_date: dt.date
    kind: str
    detail: str


@dataclass(frozen=True)
class PointTotal:
    point_id: str
    meals: dict[str, int]  # service -> subsidised count
    amount: Decimal
    exceptions: int


@dataclass
class Settlement:
    month: str
    first_day: dt.date
    last_day: dt.date
    lines: list[Line]
    exceptions: list[ExceptionItem]
    closed: SettlementMonth | None = None
    signature_ok: bool | None = None  # closed months: the stored rows match the signature
    missing_rates: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_meals(self) -> int:
        return sum(line.count for line in self.lines)

    @property
    def total_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    def by_point(self) -> list[PointTotal]:
        points: dict[str, PointTotal] = {}
        for line in self.lines:
            pt = points.get(line.point_id) or PointTotal(line.point_id, {}, Decimal("0.00"), 0)
            meals = dict(pt.meals)
            meals[line.service] = meals.get(line.service, 0) + line.count
            points[line.point_id] = PointTotal(
                pt.point_id, meals, pt.amount + line.amount, pt.exceptions
            )
        for exc in self.exceptions:
            pt = points.get(exc.point_id) or PointTotal(exc.point_id, {}, Decimal("0.00"), 0)
            points[exc.point_id] = PointTotal(pt.point_id, pt.meals, pt.amount, pt.exceptions + 1)
        return [points[k] for k in sorted(points)]

    def document(self) -> dict[str, Any]:
        """The canonical content the platform signs when it closes the month."""
        return settlement_document(
            self.month,
            self.closed.closed_at if self.closed else "",
            self.lines,
            self.exceptions,
        )


def settlement_document(
    month: str, closed_at: str, lines: Sequence[Line], exceptions: Sequence[ExceptionItem]
) -> dict[str, Any]:
    rows = sorted(
        [ln.point_id, ln.elder_id, ln.service, ln.slot, _money(ln.rate), ln.count, str(ln.amount)]
        for ln in lines
    )
    excs = sorted(
        [
            e.record_id,
            e.point_id,
            e.elder_id,
            e.service,
            e.slot,
            e.service_date.isoformat(),
            e.kind,
            e.detail,
        ]
        for e in exceptions
    )
    return {
        "month": month,
        "closed_at": closed_at,
        "lines": rows,
        "exceptions": excs,
        "total_meals": sum(ln.count for ln in lines),
        "total_amount": str(sum((ln.amount for ln in lines), Decimal("0.00"))),
    }


def document_digest(doc: dict[str, Any]) -> str:
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def settlement_message(digest: str) -> bytes:
    return b"haolinju-settlement-v1\n" + digest.encode("ascii")


def _money(value: Decimal | None) -> str:
    return "" if value is None else str(value)


# ----------------------------------------------------------------------------- rates


@dataclass(frozen=True)
class RatePeriod:
    service: str
    slot: str  # a slot, or "*"
    start: dt.date
    end: dt.date
    amount: Decimal


def rate_periods(session: Session, first: dt.date, last: dt.date) -> list[RatePeriod]:
    """The rates in force on each day of [first, last], as periods (specific slots first)."""
    rows = session.scalars(
        select(SubsidyRate)
        .where(SubsidyRate.effective_from <= last)
        .order_by(SubsidyRate.service, SubsidyRate.slot, SubsidyRate.effective_from)
    ).all()
    by_key: dict[tuple[str, str], list[SubsidyRate]] = {}
    for row in rows:
        by_key.setdefault((row.service, row.slot), []).append(row)
    periods = []
    for (service, slot), history in by_key.items():
        for i, row in enumerate(history):
            until = (
                history[i + 1].effective_from - dt.timedelta(days=1)
                if i + 1 < len(history)
                else last
            )
            start, end = max(row.effective_from, first), min(until, last)
            if start <= end:
                periods.append(RatePeriod(service, slot, start, end, Decimal(row.amount)))
    return sorted(periods, key=lambda p: (p.slot == "*", p.service, p.slot, p.start))


def _period_case(periods: list[RatePeriod], service: Any, slot: Any, day: Any) -> Any:
    """SQL: the index of the period whose rate applies to a record, or -1."""
    if not periods:
        return literal(-1)
    whens: list[tuple[ColumnElement[bool], int]] = []
    for i, p in enumerate(periods):
        cond = and_(service == p.service, day >= p.start, day <= p.end)
        if p.slot != "*":
            cond = and_(cond, slot == p.slot)
        whens.append((cond, i))
    return case(*whens, else_=-1)


# ----------------------------------------------------------------------------- computing


def _scope(point_ids: Iterable[str] | None, column: Any) -> ColumnElement[bool]:
    if point_ids is None:
        return true()
    clause: ColumnElement[bool] = column.in_(list(point_ids))
    return clause


def _classified(first: dt.date, last: dt.date, periods: list[RatePeriod]) -> Any:
    """Every record of the month with its point, elder name, exception reason (NULL: clean),
    rate period and rank among the records of the same elder, service, slot and day."""
    same = aliased(RosterEntry)
    home = (
        select(
            RosterEntry.elder_id.label("elder_id"),
            func.max(case((RosterEntry.status == "active", 1), else_=0)).label("any_active"),
            func.max(RosterEntry.name).label("name"),
        )
        .group_by(RosterEntry.elder_id)
        .subquery("home")
    )
    reason = case(
        # Never paid on a signature the platform has not verified (deferred verification: not
        # checked yet, or found forged and alerted).
        (Record.signature_ok.is_not(True), literal("unverified")),
        (and_(same.status.is_not(None), same.status != "active"), literal("ineligible")),
        (and_(same.status.is_(None), home.c.any_active.is_(None)), literal("not_on_roster")),
        (and_(same.status.is_(None), home.c.any_active == 0), literal("ineligible")),
        (Record.body.like(MANUAL_LIKE), literal("manual")),
        (
            or_(Record.flags.like("%no_face%"), Record.flags.like("%face_mismatch%")),
            literal("flagged"),
        ),
        else_=null(),
    ).label("reason")
    base = (
        select(
            Record.record_id,
            Record.elder_id,
            Record.service,
            Record.slot,
            Record.service_date,
            Record.received_at,
            Record.flags,
            Device.point_id,
            func.coalesce(same.name, home.c.name, "").label("elder_name"),
            func.coalesce(same.status, "").label("status"),
            reason,
            _period_case(periods, Record.service, Record.slot, Record.service_date).label("period"),
        )
        .join(Device, Device.device_id == Record.device_id)
        .outerjoin(same, and_(same.point_id == Device.point_id, same.elder_id == Record.elder_id))
        .outerjoin(home, home.c.elder_id == Record.elder_id)
        .where(Record.service_date >= first, Record.service_date <= last)
        .subquery("base")
    )
    partition = [base.c.elder_id, base.c.service, base.c.slot, base.c.service_date]
    order = [case((base.c.reason.is_(None), 0), else_=1), base.c.received_at, base.c.record_id]
    rank = func.row_number().over(partition_by=partition, order_by=order).label("rn")
    # The point of the record ranked first: a duplicate (a roaming elder's second meal of the
    # slot) names where the subsidised one was served.
    first_point = (
        func.first_value(base.c.point_id)
        .over(partition_by=partition, order_by=order)
        .label("first_point")
    )
    return select(base, rank, first_point)


def compute_from_records(
    session: Session, month: str, point_ids: Iterable[str] | None = None
) -> Settlement:
    """The settlement of an open month ranked over every record of the month (the path before
    meal_claim; O(n log n) in the month's records: the benchmark's baseline and the reference
    `compute` is tested against).

    One statement: the ranked records are a CTE referenced twice (materialised once by SQLite
    and PostgreSQL), grouped into the subsidised lines and filtered to the exception records;
    the manual check-ins' reasons come from their bodies, fetched by id for those alone."""
    first, last = month_bounds(month)
    periods = rate_periods(session, first, last)
    ranked = _classified(first, last, periods).cte("ranked")
    scope = list(point_ids) if point_ids is not None else None
    c = ranked.c
    lines_part = (
        select(
            literal("L").label("part"), c.point_id, c.elder_id,
            func.max(c.elder_name).label("elder_name"), c.service, c.slot, c.period,
            func.count().label("n"), cast(null(), String).label("record_id"),
            cast(null(), Date).label("service_date"), cast(null(), String).label("reason"),
            cast(null(), String).label("status"), cast(null(), String).label("flags"),
            cast(null(), String).label("first_point"),
        )
        .where(c.reason.is_(None), c.rn == 1, _scope(scope, c.point_id))
        .group_by(c.point_id, c.elder_id, c.service, c.slot, c.period)
    )  # fmt: skip
    exceptions_part = select(
        literal("X"), c.point_id, c.elder_id, c.elder_name, c.service, c.slot, c.period,
        literal(0), c.record_id, c.service_date, c.reason, c.status, c.flags, c.first_point,
    ).where(or_(c.reason.is_not(None), c.rn > 1), _scope(scope, c.point_id))  # fmt: skip
    rows = session.execute(union_all(lines_part, exceptions_part)).all()

    merged: dict[tuple[str, str, str, str, Decimal | None], list[Any]] = {}
    missing: set[tuple[str, str]] = set()
    exc_rows = []
    for row in rows:
        if row.part != "L":
            exc_rows.append(row)
            continue
        rate = periods[row.period].amount if row.period >= 0 else None
        if rate is None:
            missing.add((row.service, row.slot))
        key = (row.point_id, row.elder_id, row.service, row.slot, rate)
        entry = merged.setdefault(key, [row.elder_name or "", 0])
        entry[1] += int(row.n)
    lines = [
        Line(p, e, name, s, sl, rate, n, (rate or Decimal("0.00")) * n)
        for (p, e, s, sl, rate), (name, n) in sorted(
            merged.items(), key=lambda kv: (kv[0][:4], kv[0][4] or Decimal(0))
        )
    ]
    manual_ids = [r.record_id for r in exc_rows if r.reason == "manual"]
    bodies: dict[str, str] = {}
    for start in range(0, len(manual_ids), IN_CHUNK):
        chunk = manual_ids[start : start + IN_CHUNK]
        found = session.execute(
            select(Record.record_id, Record.body).where(Record.record_id.in_(chunk))
        ).all()
        bodies.update((rid, body) for rid, body in found)
    exc_rows.sort(key=lambda r: (r.point_id, r.service_date, r.elder_id, r.record_id))
    exceptions = [_exception(row, bodies.get(row.record_id)) for row in exc_rows]
    exceptions += _late(session, first, scope)
    return Settlement(month, first, last, lines, exceptions, missing_rates=sorted(missing))


class _Row(NamedTuple):
    """One record as the exceptions need it (the attributes `_exception` reads)."""

    record_id: str
    point_id: str
    elder_id: str
    elder_name: str
    service: str
    slot: str
    service_date: dt.date
    reason: str | None  # None with first_point set: a duplicate
    status: str
    flags: str
    first_point: str | None = None
    note: tuple[str | None, str | None] | None = None  # manual: (reason, caregiver)


def _home_roster() -> Any:
    """Per elder, county-wide: active on any roster (1/0) and a name."""
    return (
        select(
            RosterEntry.elder_id.label("elder_id"),
            func.max(case((RosterEntry.status == "active", 1), else_=0)).label("any_active"),
            func.max(RosterEntry.name).label("name"),
        )
        .group_by(RosterEntry.elder_id)
        .subquery("home")
    )


def _with_roster(source: Any, *extra: Any) -> Any:
    """SELECT source's columns plus the elder's name, status at the point and the roster's
    reason not to pay (NULL: allowed), as compute_from_records judges them."""
    same = aliased(RosterEntry)
    home = _home_roster()
    c = source.c
    roster_reason = case(
        (and_(same.status.is_not(None), same.status != "active"), literal("ineligible")),
        (and_(same.status.is_(None), home.c.any_active.is_(None)), literal("not_on_roster")),
        (and_(same.status.is_(None), home.c.any_active == 0), literal("ineligible")),
        else_=null(),
    )
    return (
        select(
            source,
            func.coalesce(same.name, home.c.name, "").label("elder_name"),
            func.coalesce(same.status, "").label("status"),
            roster_reason.label("roster_reason"),
            *extra,
        )
        .outerjoin(same, and_(same.point_id == c.point_id, same.elder_id == c.elder_id))
        .outerjoin(home, home.c.elder_id == c.elder_id)
    )


KIND_REASON = {MANUAL: "manual", FLAGGED: "flagged"}


def _reason(ok: Any, roster_reason: str | None, kind: int = CLEAN) -> str | None:
    """The exception a record falls under, in compute_from_records' order, or None (clean)."""
    if not ok:
        return "unverified"
    if roster_reason:
        return roster_reason
    return KIND_REASON.get(kind)


class _ClaimSettlement:
    """compute() in its steps; `merged` accumulates the subsidised counts, `exceptions` the
    records listed apart. Province scale is ~2M lines and ~1M exceptions: rows are unpacked
    as tuples and built once."""

    def __init__(self, session: Session, month: str, scope: list[str] | None) -> None:
        self.session = session
        self.first, self.last = month_bounds(month)
        self.periods = rate_periods(session, self.first, self.last)
        self.rates = [p.amount for p in self.periods]
        self.scope = None if scope is None else set(scope)
        self.merged: dict[tuple[str, str, str, str, Decimal | None], list[Any]] = {}
        self.missing: set[tuple[str, str]] = set()
        self.exceptions: list[_Row] = []
        claim = MealClaim
        self.in_month = and_(claim.service_date >= self.first, claim.service_date <= self.last)
        self.ok = case((claim.signature_ok.is_(True), 1), else_=0).label("ok")

    def add_line(
        self, point: str, elder: str, name: str, service: str, slot: str, period: int, n: int
    ) -> None:
        rate = self.rates[period] if period >= 0 else None
        if rate is None:
            self.missing.add((service, slot))
        key = (point, elder, service, slot, rate)
        entry = self.merged.get(key)
        if entry is None:
            self.merged[key] = [name or "", n]
        else:
            entry[1] += n

    def uncontested(self) -> dict[tuple[str, str], tuple[str, str, str | None]]:
        """The bulk in one grouped pass over the month's claims (no sort of records): lines
        for the groups the roster and the signature allow; the others returned, per point
        and elder, as (name, status, roster reason)."""
        claim = MealClaim
        period = _period_case(self.periods, claim.service, claim.slot, claim.service_date)
        u = (
            select(claim.point_id, claim.elder_id, claim.service, claim.slot,
                   period.label("period"), self.ok)
            .where(self.in_month, claim.claimed, ~claim.contested)
            .where(_scope(None if self.scope is None else list(self.scope), claim.point_id))
            .subquery("u")
        ).c  # fmt: skip
        keys = [u.point_id, u.elder_id, u.service, u.slot, u.period, u.ok]
        groups = select(*keys, func.count().label("n")).group_by(*keys).subquery("g")
        unpaid = {}
        add = self.add_line
        for (
            point,
            elder,
            service,
            slot,
            period_i,
            ok,
            n,
            name,
            status,
            roster_reason,
        ) in self.session.execute(_with_roster(groups)):
            if ok and not roster_reason:
                add(point, elder, name, service, slot, period_i, n)
            else:
                unpaid[(point, elder)] = (name or "", status, roster_reason)
        return unpaid

    def ranked(self) -> set[str]:
        """The contested slots' claims and every unclaimed record (duplicates, manual,
        flagged), ranked like compute_from_records: clean first, then received first (the
        claims keep received_at for exactly these). Returns the record ids handled."""
        claim = MealClaim
        part = (
            select(claim.record_id, claim.point_id, claim.elder_id, claim.service, claim.slot,
                   claim.service_date, claim.kind, claim.flags, self.ok, claim.received_at,
                   claim.reason, claim.caregiver_id)
            .where(self.in_month, or_(~claim.claimed, claim.contested))
            .subquery("k")
        )  # fmt: skip
        r = part.c
        period = _period_case(self.periods, r.service, r.slot, r.service_date).label("period")
        handled: set[str] = set()
        by_slot: dict[tuple[str, str, str, dt.date], list[tuple[Any, ...]]] = {}
        scope = self.scope
        for row in self.session.execute(_with_roster(part, period)):
            (rid, point, elder, service, slot, day, kind, flags, ok, received, note_reason,
             caregiver, name, status, roster_reason, period_i) = row  # fmt: skip
            handled.add(rid)
            reason = _reason(ok, roster_reason, kind)
            if reason is None:
                by_slot.setdefault((elder, service, slot, day), []).append(
                    (received or "", rid, point, name, status, flags, period_i)
                )
            elif scope is None or point in scope:
                note = (note_reason, caregiver) if kind == MANUAL else None
                self.exceptions.append(
                    _Row(rid, point, elder, name, service, slot, day, reason, status, flags,
                         None, note)
                )  # fmt: skip
        for (elder, service, slot, day), rows in by_slot.items():
            rows.sort()  # received_at, then record id: compute_from_records' order
            winner = rows[0][2]
            for i, (_, rid, point, name, status, flags, period_i) in enumerate(rows):
                if scope is not None and point not in scope:
                    continue
                if i == 0:
                    self.add_line(point, elder, name, service, slot, period_i, 1)
                else:
                    self.exceptions.append(
                        _Row(rid, point, elder, name, service, slot, day, None, status, flags,
                             winner)
                    )  # fmt: skip
        return handled

    def unpaid_records(
        self, unpaid: dict[tuple[str, str], tuple[str, str, str | None]], handled: set[str]
    ) -> None:
        """The records of the groups step 1 did not pay, fetched by elder (the claims' unique
        index leads with it)."""
        claim = MealClaim
        elders = sorted({elder for _, elder in unpaid})
        for start in range(0, len(elders), IN_CHUNK):
            chunk = elders[start : start + IN_CHUNK]
            query = select(
                claim.record_id, claim.point_id, claim.elder_id, claim.service, claim.slot,
                claim.service_date, claim.flags, self.ok,
            ).where(self.in_month, claim.claimed, claim.elder_id.in_(chunk))  # fmt: skip
            for rid, point, elder, service, slot, day, flags, ok in self.session.execute(query):
                info = unpaid.get((point, elder))
                if info is None or rid in handled:
                    continue
                if self.scope is not None and point not in self.scope:
                    continue
                reason = _reason(ok, info[2])
                if reason is not None:
                    self.exceptions.append(
                        _Row(rid, point, elder, info[0], service, slot, day, reason, info[1],
                             flags)
                    )  # fmt: skip

    def result(self, month: str) -> Settlement:
        merged = self.merged
        if self.missing:  # a None rate does not compare with a Decimal
            keys = sorted(merged, key=lambda k: (k[:4], k[4] or Decimal(0)))
        else:
            keys = sorted(merged)  # plain tuples: compared in C
        products: dict[tuple[Decimal | None, int], Decimal] = {}
        lines = []
        for key in keys:
            name, n = merged[key]
            rate = key[4]
            amount = products.get((rate, n))
            if amount is None:
                amount = products[(rate, n)] = (rate or Decimal("0.00")) * n
            lines.append(Line(key[0], key[1], name, key[2], key[3], rate, n, amount))
        self.exceptions.sort(key=lambda row: (row[1], row[6], row[2], row[0]))
        # Most details repeat (the same flag, status, pair of points): built once each.
        details: dict[tuple[Any, ...], str] = {}
        exceptions = []
        for row in self.exceptions:
            reason = row.reason or "duplicate"
            shape = (reason, row.flags, row.status, row.first_point, row.point_id, row.note)
            detail = details.get(shape)
            if detail is None:
                detail = details[shape] = _exception(row, None, row.note).detail
            exceptions.append(
                ExceptionItem(row.record_id, row.point_id, row.elder_id, row.elder_name or "",
                              row.service, row.slot, row.service_date, reason, detail)
            )  # fmt: skip
        exceptions += _late_claims(
            self.session, self.first, None if self.scope is None else list(self.scope)
        )
        return Settlement(
            month, self.first, self.last, lines, exceptions, missing_rates=sorted(self.missing)
        )


def compute(session: Session, month: str, point_ids: Iterable[str] | None = None) -> Settlement:
    """The settlement of an open month as the records stand now (scoped to `point_ids`;
    duplicates are still judged county-wide), read from the claims ingest keeps.

    1. Uncontested claims (no other clean record of their slot): grouped per point, elder,
       service, slot, rate period and signature state in SQL, then joined with the rosters:
       a group the roster and signature allow is a line; the records of the others are
       fetched by elder and listed as exceptions.
    2. Contested slots and the manual/flagged records: fetched with their roster state and
       ranked here like compute_from_records ranks (clean first, then received first)."""
    work = _ClaimSettlement(session, month, list(point_ids) if point_ids is not None else None)
    unpaid = work.uncontested()
    handled = work.ranked()
    work.unpaid_records(unpaid, handled)
    return work.result(month)


def _exception(
    row: Any, body_text: str | None, note: tuple[str | None, str | None] | None = None
) -> ExceptionItem:
    """An exception's item; a manual check-in's reason and caregiver come from its body
    (records path) or `note` (claims path)."""
    kind = row.reason or "duplicate"
    if kind == "manual":
        if note is None:
            body = json.loads(body_text or "{}")
            note = (body.get("reason"), body.get("caregiver_id"))
        detail = f"原因：{note[0] or '未填'}；护理员：{note[1] or '未知'}"
    elif kind == "flagged":
        detail = f"标记：{row.flags}"
    elif kind == "ineligible":
        detail = f"名册状态：{STATUS_LABELS.get(row.status, row.status or '各点均非在册')}"
    elif kind == "not_on_roster":
        detail = "全县名册中没有此人"
    elif kind == "unverified":
        detail = "设备签名尚未验证或验证失败（见预警）"
    elif row.first_point and row.first_point != row.point_id:
        detail = f"同一老人同日同餐次已在{row.first_point}有一条补贴记录（本条在{row.point_id}）"
    else:
        detail = "同一老人同日同餐次已有一条补贴记录"
    return ExceptionItem(
        row.record_id,
        row.point_id,
        row.elder_id,
        row.elder_name or "",
        row.service,
        row.slot,
        row.service_date,
        kind,
        detail,
    )


def _late(session: Session, first: dt.date, scope: list[str] | None) -> list[ExceptionItem]:
    """Records of closed months before `first` that arrived after their close and are not yet
    in any closed month's exceptions."""
    name = (
        select(func.max(RosterEntry.name))
        .where(RosterEntry.elder_id == Record.elder_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Record.record_id,
            Device.point_id,
            Record.elder_id,
            name,
            Record.service,
            Record.slot,
            Record.service_date,
            SettlementMonth.month,
            Record.received_at,
        )
        .join(Device, Device.device_id == Record.device_id)
        .join(
            SettlementMonth,
            and_(
                Record.service_date >= SettlementMonth.first_day,
                Record.service_date <= SettlementMonth.last_day,
                Record.received_at > SettlementMonth.closed_at,
            ),
        )
        .where(
            Record.service_date < first,
            ~exists(select(1).where(SettlementException.record_id == Record.record_id)),
            _scope(scope, Device.point_id),
        )
        .order_by(Device.point_id, Record.service_date, Record.record_id)
    ).all()
    return [
        ExceptionItem(
            r[0],
            r[1],
            r[2],
            r[3] or "",
            r[4],
            r[5],
            r[6],
            "late",
            f"属已结账的{r[7]}，{r[8][:19].replace('T', ' ')}（UTC）才到达",
        )
        for r in rows
    ]


def _late_claims(session: Session, first: dt.date, scope: list[str] | None) -> list[ExceptionItem]:
    """`_late` from the claims: ingest marked the records that arrived after their month was
    closed (kind LATE, a partial index), so no scan of past months' records."""
    name = (
        select(func.max(RosterEntry.name))
        .where(RosterEntry.elder_id == MealClaim.elder_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            MealClaim.record_id, MealClaim.point_id, MealClaim.elder_id, name,
            MealClaim.service, MealClaim.slot, MealClaim.service_date, SettlementMonth.month,
            MealClaim.received_at,
        )
        .join(
            SettlementMonth,
            and_(
                MealClaim.service_date >= SettlementMonth.first_day,
                MealClaim.service_date <= SettlementMonth.last_day,
            ),
        )
        .where(
            MealClaim.kind == LATE,
            MealClaim.service_date < first,
            ~exists(select(1).where(SettlementException.record_id == MealClaim.record_id)),
            _scope(scope, MealClaim.point_id),
        )
        .order_by(MealClaim.point_id, MealClaim.service_date, MealClaim.record_id)
    ).all()  # fmt: skip
    return [
        ExceptionItem(
            r[0], r[1], r[2], r[3] or "", r[4], r[5], r[6], "late",
            f"属已结账的{r[7]}，{(r[8] or '')[:19].replace('T', ' ')}（UTC）才到达",
        )
        for r in rows
    ]  # fmt: skip


# ----------------------------------------------------------------------------- closed months


def load(
    session: Session,
    month: str,
    point_ids: Iterable[str] | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Settlement:
    """A closed month from its frozen rows, or the open month computed now."""
    first, last = month_bounds(month)
    closed = session.get(SettlementMonth, month)
    if closed is None:
        return compute(session, month, point_ids)
    scope = list(point_ids) if point_ids is not None else None
    names = _names(session)
    lines = [
        Line(
            r.point_id,
            r.elder_id,
            names.get((r.point_id, r.elder_id), ""),
            r.service,
            r.slot,
            Decimal(r.rate) if r.rate else None,
            r.count,
            Decimal(r.amount),
        )
        for r in session.scalars(
            select(SettlementLine)
            .where(SettlementLine.month == month, _scope(scope, SettlementLine.point_id))
            .order_by(SettlementLine.id)
        )
    ]
    exceptions = [
        ExceptionItem(
            r.record_id,
            r.point_id,
            r.elder_id,
            names.get((r.point_id, r.elder_id), names.get(("", r.elder_id), "")),
            r.service,
            r.slot,
            r.service_date,
            r.kind,
            r.detail,
        )
        for r in session.scalars(
            select(SettlementException)
            .where(SettlementException.month == month, _scope(scope, SettlementException.point_id))
            .order_by(SettlementException.id)
        )
    ]
    result = Settlement(month, first, last, lines, exceptions, closed=closed)
    if public_key is not None:
        result.signature_ok = verify_closed(session, month, public_key)
    return result


def _names(session: Session) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for point_id, elder_id, name in session.execute(
        select(RosterEntry.point_id, RosterEntry.elder_id, RosterEntry.name)
    ):
        out[(point_id, elder_id)] = name
        out.setdefault(("", elder_id), name)
    return out


def verify_closed(session: Session, month: str, public_key: Ed25519PublicKey) -> bool:
    """True when the stored rows of a closed month are exactly what the platform signed."""
    closed = session.get(SettlementMonth, month)
    if closed is None:
        return False
    full = load(session, month)
    doc = settlement_document(month, closed.closed_at, full.lines, full.exceptions)
    digest = document_digest(doc)
    return digest == closed.digest and verify(
        public_key, settlement_message(digest), closed.signature
    )


class AlreadyClosedError(SettlementError):
    pass


def close(
    session: Session,
    month: str,
    key: Ed25519PrivateKey,
    who: str,
    now: dt.datetime,
    today: dt.date,
) -> SettlementMonth:
    """Freeze and sign the month (in the caller's transaction).

    Every device row is locked first (FOR UPDATE on PostgreSQL; SQLite's single writer already
    holds the database): batches in flight commit before the computation sees the records, and
    later ones stamp `received_at` after `closed_at`, so each record is either in this
    settlement or `late` in a later one, never neither."""
    first, last = month_bounds(month)
    if last >= today:
        raise SettlementError(f"{month} 尚未结束（今天 {today}），月末之后才能结账")
    session.execute(select(Device.device_id).with_for_update()).all()
    if session.get(SettlementMonth, month, with_for_update=True) is not None:
        raise AlreadyClosedError(f"{month} 已结账")
    closed_at = now.isoformat(timespec="microseconds")
    result = compute(session, month)
    doc = settlement_document(month, closed_at, result.lines, result.exceptions)
    digest = document_digest(doc)
    row = SettlementMonth(
        month=month,
        first_day=first,
        last_day=last,
        closed_at=closed_at,
        closed_by=who,
        total_meals=result.total_meals,
        total_amount=str(result.total_amount),
        digest=digest,
        signature=b64encode(key.sign(settlement_message(digest))),
        public_key=b64encode(key.public_key().public_bytes_raw()),
    )
    session.add(row)
    session.add_all(
        SettlementLine(
            month=month,
            point_id=ln.point_id,
            elder_id=ln.elder_id,
            service=ln.service,
            slot=ln.slot,
            rate=_money(ln.rate),
            count=ln.count,
            amount=str(ln.amount),
        )
        for ln in result.lines
    )
    session.add_all(
        SettlementException(
            month=month,
            record_id=e.record_id,
            point_id=e.point_id,
            elder_id=e.elder_id,
            service=e.service,
            slot=e.slot,
            service_date=e.service_date,
            kind=e.kind,
            detail=e.detail,
        )
        for e in result.exceptions
    )
    return row


def point_ids_of(session: Session, township: str | None) -> list[str] | None:
    """The points a principal may see: None for the county (administrator)."""
    if township is None:
        return None
    return list(session.scalars(select(MealPoint.point_id).where(MealPoint.township == township)))
