"""The village's books for 公示 (中民发〔2024〕3号, sections 四, 五, 六): what each kind of entry
holds, how it is checked, and the monthly figures the notice board shows.

Kinds of entry (the table and its chain are in models/books.py):

- `expense`   上月食材采购清单和各项开支: date, category (食材 with its food type, 燃料, 水电,
              护理员报酬, 设备, 其他), item, quantity + unit, amount, supplier, buyer, and the
              SHA-256 of a receipt photo kept on the terminal (never uploaded).
- `income`    补贴到账, 其他收入 (meal fees and money donations have kinds of their own).
- `donation`  六.二: donor, money or goods (with quantity), ceremony date, what it is used for.
- `meal_fee`  六.三: who paid an elder's 伙食费 for which month (the 光荣榜 lists children and
              guardians who paid).
- `cleaning_procedure`  助洁程序、内容和时间 (the latest entry is the one in force).
- `health_check`  四: a caregiver's 健康证/体检, with its expiry.
- `patrol`    四: the township leader's monthly inspection, hazards, due and closing dates.
- `notice_posted`  the month's notices printed and posted (五: before the 10th, >= 5 days).

Every amount is a `Decimal` with at most two places, kept in the body as text. A correction is a
new entry (`corrects` = the old id) with the full new body, or a void (body {"voided": reason});
`effective()` gives the entries in force. Messages of `BookError` are for the caregiver.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models.books import BookEntry, append_entry, canonical_body
from models.db import Store
from models.tables import AuditEvent, Caregiver, Elder, MealRecord

MAX_TEXT = 200
MAX_AMOUNT = Decimal("1000000")  # one entry over a million yuan is a typing mistake
CENT = Decimal("0.01")

EXPENSE_CATEGORIES = ("食材", "燃料", "水电", "护理员报酬", "设备", "其他")
FOOD_TYPES = ("肉", "蛋", "奶", "蔬菜", "粮油", "调料", "其他")
# The notice (二.1) names too little meat, eggs, milk and vegetables as the quality problem.
KEY_FOODS = ("肉", "蛋", "奶", "蔬菜")
INCOME_SOURCES = ("补贴", "其他")
PAYER_RELATIONS = ("本人", "子女", "监护人", "村集体", "其他")
DONOR_TYPES = ("个人", "企业")
HEALTH_WARN_DAYS = 30
NOTICE_DEADLINE_DAY = 10
NOTICE_MIN_DAYS = 5
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class BookError(ValueError):
    """An entry that cannot be saved; the message is for the caregiver (Chinese)."""


# ----------------------------------------------------------------------------- field checks


def text(value: object, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = str(value or "").strip()
    if required and not value:
        raise BookError(f"请填写{what}")
    if len(value) > limit:
        raise BookError(f"{what}太长（最多 {limit} 字）")
    if value.startswith(FORMULA_START):
        # A name like "=HYPERLINK(...)" becomes a live formula in a spreadsheet export.
        raise BookError(f"{what}不能以 = + - @ 开头")
    return value


def amount(value: object, what: str = "金额", *, allow_zero: bool = False) -> Decimal:
    """Yuan with at most two decimals, from what a caregiver typed on the digit pad."""
    raw = str(value or "").strip().replace("，", "").replace(",", "").removesuffix("元")
    if not re.fullmatch(r"\d{1,7}(\.\d{1,2})?", raw):
        if raw.startswith("-"):
            raise BookError(f"{what}不能是负数")
        raise BookError(f"{what}请填写数字，最多两位小数（例如 12.50）")
    try:
        result = Decimal(raw).quantize(CENT)
    except InvalidOperation:
        raise BookError(f"{what}请填写数字") from None
    if result == 0 and not allow_zero:
        raise BookError(f"{what}不能是 0")
    if result > MAX_AMOUNT:
        raise BookError(f"{what}太大（超过 100 万元），请检查")
    return result


def quantity(value: object) -> Decimal | None:
    raw = str(value or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"\d{1,6}(\.\d{1,3})?", raw):
        raise BookError("数量请填写数字（例如 2.5）")
    return Decimal(raw)


def day(value: object, what: str, today: dt.date, *, future_ok: bool = False) -> dt.date:
    if isinstance(value, dt.date):
        result = value
    else:
        try:
            result = dt.date.fromisoformat(str(value or "").strip())
        except ValueError:
            raise BookError(f"请选择{what}") from None
    if not future_ok and result > today:
        raise BookError(f"{what}不能晚于今天")
    if result < today - dt.timedelta(days=400):
        raise BookError(f"{what}太早（超过一年）")
    return result


def month_text(value: object) -> str:
    raw = str(value or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}", raw) or not 1 <= int(raw[5:]) <= 12:
        raise BookError("请选择月份")
    return raw


def choice(value: object, options: Iterable[str], what: str) -> str:
    raw = str(value or "").strip()
    if raw not in tuple(options):
        raise BookError(f"请选择{what}")
    return raw


# ----------------------------------------------------------------------------- kinds


def _expense(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    category = choice(form.get("category"), EXPENSE_CATEGORIES, "开支类别")
    body: dict[str, Any] = {
        "category": category,
        "food_type": choice(form.get("food_type"), FOOD_TYPES, "食材种类")
        if category == "食材"
        else "",
        "item": text(form.get("item"), "品名"),
        "unit": text(form.get("unit"), "单位", required=False, limit=8),
        "amount": str(amount(form.get("amount"))),
        "supplier": text(form.get("supplier"), "供应商", required=False),
        "buyer": text(form.get("buyer"), "采购人"),
        "receipt_sha256": _receipt(form.get("receipt_sha256")),
    }
    qty = quantity(form.get("quantity"))
    body["quantity"] = "" if qty is None else str(qty)
    return day(form.get("date"), "日期", today), body


def _receipt(value: object) -> str:
    raw = str(value or "").strip()
    if raw and not re.fullmatch(r"[0-9a-f]{64}", raw):
        raise BookError("收据照片无效，请重新拍照")
    return raw


def _income(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    body = {
        "source": choice(form.get("source"), INCOME_SOURCES, "收入来源"),
        "amount": str(amount(form.get("amount"))),
        "note": text(form.get("note"), "说明", required=False),
    }
    return day(form.get("date"), "日期", today), body


def _donation(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    what = choice(form.get("what"), ("money", "goods"), "捐赠的是钱还是物")
    body: dict[str, Any] = {
        "donor": text(form.get("donor"), "捐赠人"),
        "donor_type": choice(form.get("donor_type"), DONOR_TYPES, "个人或企业"),
        "what": what,
        "amount": str(amount(form.get("amount"))) if what == "money" else "",
        "goods": text(form.get("goods"), "物品") if what == "goods" else "",
        "quantity": str(quantity(form.get("quantity")) or "") if what == "goods" else "",
        "unit": text(form.get("unit"), "单位", required=False, limit=8),
        "purpose": text(form.get("purpose"), "用途", required=False),
        "ceremony_date": "",
    }
    if form.get("ceremony_date"):
        body["ceremony_date"] = day(
            form["ceremony_date"], "接收仪式日期", today, future_ok=True
        ).isoformat()
    return day(form.get("date"), "捐赠日期", today), body


def _meal_fee(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    body = {
        "elder_id": text(form.get("elder_id"), "老人", limit=64),
        "month": month_text(form.get("month")),
        "payer_relation": choice(form.get("payer_relation"), PAYER_RELATIONS, "缴费人关系"),
        "payer_name": text(form.get("payer_name"), "缴费人姓名", limit=32),
        "amount": str(amount(form.get("amount"))),
    }
    return day(form.get("date"), "缴费日期", today), body


def _cleaning_procedure(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    body = {
        "procedure": text(form.get("procedure"), "助洁程序", limit=1000),
        "content": text(form.get("content"), "助洁内容", limit=1000),
        "hours": text(form.get("hours"), "助洁时间", limit=200),
    }
    return today, body


def _health_check(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    checked = day(form.get("date"), "体检日期", today)
    expires = day(form.get("expires"), "有效期至", today, future_ok=True)
    if expires <= checked:
        raise BookError("有效期至必须晚于体检日期")
    body = {
        "caregiver_id": text(form.get("caregiver_id"), "护理员", limit=64),
        "certificate": text(form.get("certificate"), "健康证编号", required=False, limit=64),
        "expires": expires.isoformat(),
    }
    return checked, body


def _patrol(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    hazards = text(form.get("hazards"), "发现的隐患", required=False, limit=1000)
    body = {
        "inspector": text(form.get("inspector"), "检查人", limit=32),
        "role": text(form.get("role"), "职务", required=False, limit=32),
        "findings": text(form.get("findings"), "检查情况", limit=1000),
        "hazards": hazards,
        "rectification": text(form.get("rectification"), "整改措施", required=False, limit=1000),
        "due": "",
        "closed": "",
    }
    if hazards:
        body["due"] = day(form.get("due"), "整改期限", today, future_ok=True).isoformat()
    if form.get("closed"):
        body["closed"] = day(form.get("closed"), "整改完成日期", today).isoformat()
    return day(form.get("date"), "检查日期", today), body


def _notice_posted(form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    body = {"month": month_text(form.get("month"))}
    return day(form.get("date"), "张贴日期", today), body


VALIDATORS: dict[str, Callable[[dict[str, Any], dt.date], tuple[dt.date, dict[str, Any]]]] = {
    "expense": _expense,
    "income": _income,
    "donation": _donation,
    "meal_fee": _meal_fee,
    "cleaning_procedure": _cleaning_procedure,
    "health_check": _health_check,
    "patrol": _patrol,
    "notice_posted": _notice_posted,
}


def validate(kind: str, form: dict[str, Any], today: dt.date) -> tuple[dt.date, dict[str, Any]]:
    """(the day the entry is about, its body) or BookError saying what is wrong."""
    if kind not in VALIDATORS:
        raise BookError("未知的台账类型")
    return VALIDATORS[kind](form, today)


# ----------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Entry:
    entry_id: str
    seq: int
    kind: str
    entry_date: dt.date
    body: dict[str, Any]
    corrects: str | None
    caregiver_id: str
    created_at: dt.datetime

    @property
    def voided(self) -> bool:
        return "voided" in self.body

    def money(self, key: str = "amount") -> Decimal:
        raw = self.body.get(key) or "0"
        return Decimal(str(raw))


def _entry(row: BookEntry) -> Entry:
    return Entry(
        row.entry_id,
        row.seq,
        row.kind,
        row.entry_date,
        json.loads(row.body),
        row.corrects,
        row.caregiver_id,
        row.created_at,
    )


class Books:
    """Append-only entries through the single writer, each signed by the device key."""

    def __init__(
        self, store: Store, device_id: str, signer: Callable[[], Callable[[str], str] | None]
    ) -> None:
        self.store = store
        self.device_id = device_id
        # Resolved per write: the key is loaded lazily by the daemon and may be missing (then
        # nothing is written, rather than an unsigned entry the platform would refuse).
        self._signer = signer

    def add(
        self,
        kind: str,
        form: dict[str, Any],
        *,
        caregiver_id: str,
        now: dt.datetime,
        corrects: str | None = None,
    ) -> Entry:
        entry_date, body = validate(kind, form, now.date())
        return self._append(kind, entry_date, body, caregiver_id, now, corrects)

    def void(self, entry_id: str, reason: str, *, caregiver_id: str, now: dt.datetime) -> Entry:
        reason = text(reason, "作废原因")
        with self.store.read() as s:
            old = s.get(BookEntry, entry_id)
        if old is None:
            raise BookError("找不到要作废的记录")
        return self._append(
            old.kind, old.entry_date, {"voided": reason}, caregiver_id, now, entry_id
        )

    def _append(
        self,
        kind: str,
        entry_date: dt.date,
        body: dict[str, Any],
        caregiver_id: str,
        now: dt.datetime,
        corrects: str | None,
    ) -> Entry:
        signer = self._signer()
        if signer is None:
            raise BookError("终端还没有设备密钥（未注册），暂时不能记账，请联系技术员")
        with self.store.write() as s:
            if corrects is not None:
                old = s.get(BookEntry, corrects)
                if old is None or old.kind != kind:
                    raise BookError("找不到要更正的记录")
                if s.scalar(select(BookEntry.entry_id).where(BookEntry.corrects == corrects)):
                    raise BookError("这条记录已经更正过，请更正最新的那条")
            row = append_entry(
                s,
                signer=signer,
                device_id=self.device_id,
                kind=kind,
                entry_date=entry_date,
                body=canonical_body(body),
                corrects=corrects,
                caregiver_id=caregiver_id,
                created_at=now,
            )
            s.add(
                AuditEvent(
                    at=now,
                    kind="book_entry",
                    detail=json.dumps(
                        {"kind": kind, "entry": row.entry_id, "corrects": corrects},
                        ensure_ascii=False,
                    ),
                )
            )
            return _entry(row)

    def entries(self, kinds: Iterable[str] | None = None) -> list[Entry]:
        """Every entry in seq order, superseded ones included (the audit view)."""
        with self.store.read() as s:
            q = select(BookEntry).order_by(BookEntry.seq)
            if kinds is not None:
                q = q.where(BookEntry.kind.in_(list(kinds)))
            return [_entry(r) for r in s.scalars(q)]

    def effective(self, kinds: Iterable[str] | None = None) -> list[Entry]:
        """The entries in force: the newest of each correction chain, voids dropped."""
        return effective(self.entries(kinds))


def effective(entries: list[Entry]) -> list[Entry]:
    superseded = {e.corrects for e in entries if e.corrects}
    return [e for e in entries if e.entry_id not in superseded and not e.voided]


# ----------------------------------------------------------------------------- the month


@dataclass
class MonthBooks:
    """The figures of one month's 公示 of purchases, spending and income."""

    year: int
    month: int
    expenses: list[Entry] = field(default_factory=list)
    incomes: list[Entry] = field(default_factory=list)
    donations: list[Entry] = field(default_factory=list)
    meal_fees: list[Entry] = field(default_factory=list)
    meals_served: int = 0

    @property
    def label(self) -> str:
        return f"{self.year}年{self.month}月"

    def by_category(self) -> dict[str, Decimal]:
        totals = {c: Decimal("0.00") for c in EXPENSE_CATEGORIES}
        for e in self.expenses:
            totals[e.body["category"]] += e.money()
        return totals

    def food_by_type(self) -> dict[str, Decimal]:
        totals = {t: Decimal("0.00") for t in FOOD_TYPES}
        for e in self.expenses:
            if e.body["category"] == "食材":
                totals[e.body["food_type"]] += e.money()
        return totals

    @property
    def spending(self) -> Decimal:
        return sum((e.money() for e in self.expenses), Decimal("0.00"))

    @property
    def income_by_source(self) -> dict[str, Decimal]:
        out = {"补贴": Decimal("0.00"), "伙食费": Decimal("0.00"), "捐款": Decimal("0.00")}
        out["其他"] = Decimal("0.00")
        for e in self.incomes:
            out[e.body["source"]] += e.money()
        out["伙食费"] += sum((e.money() for e in self.meal_fees), Decimal("0.00"))
        money = [d for d in self.donations if d.body["what"] == "money"]
        out["捐款"] += sum((d.money() for d in money), Decimal("0.00"))
        return out

    @property
    def income(self) -> Decimal:
        return sum(self.income_by_source.values(), Decimal("0.00"))

    @property
    def cost_per_meal(self) -> Decimal | None:
        if not self.meals_served:
            return None
        return (self.spending / self.meals_served).quantize(CENT)

    def key_food_shares(self) -> dict[str, Decimal]:
        """Percent of food spending on 肉/蛋/奶/蔬菜 (one decimal)."""
        food = self.food_by_type()
        total = sum(food.values(), Decimal("0"))
        if not total:
            return {t: Decimal("0.0") for t in KEY_FOODS}
        return {t: (food[t] * 100 / total).quantize(Decimal("0.1")) for t in KEY_FOODS}


def month_books(books: Books, store: Store, year: int, month: int) -> MonthBooks:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    key = f"{year:04d}-{month:02d}"
    out = MonthBooks(year, month)
    for e in books.effective(["expense", "income", "donation", "meal_fee"]):
        in_month = first <= e.entry_date <= last
        if e.kind == "expense" and in_month:
            out.expenses.append(e)
        elif e.kind == "income" and in_month:
            out.incomes.append(e)
        elif e.kind == "donation" and in_month:
            out.donations.append(e)
        elif e.kind == "meal_fee" and e.body["month"] == key:
            out.meal_fees.append(e)
    with store.read() as s:
        out.meals_served = int(
            s.scalar(
                select(func.count())
                .select_from(MealRecord)
                .where(
                    MealRecord.service == "meal",
                    MealRecord.service_date >= first,
                    MealRecord.service_date <= last,
                )
            )
            or 0
        )
    return out


# ----------------------------------------------------------------------------- reminders


@dataclass(frozen=True)
class Reminder:
    """One line for the status bar: level warn (yellow) or bad (red)."""

    key: str
    level: str
    text: str


def key_food_reminder(entries: list[Entry], today: dt.date) -> Reminder | None:
    """None of 肉/蛋/奶/蔬菜 bought in the last seven days -> say which."""
    since = today - dt.timedelta(days=7)
    bought = {
        e.body.get("food_type")
        for e in entries
        if e.kind == "expense" and e.body.get("category") == "食材" and since < e.entry_date
    }
    missing = [t for t in KEY_FOODS if t not in bought]
    if not missing:
        return None
    return Reminder("key_food", "warn", "近7天没有采购：" + "、".join(missing))


def health_reminders(
    entries: list[Entry], caregivers: dict[str, str], today: dt.date
) -> list[Reminder]:
    """Per active caregiver (id -> name): no certificate, expiring within 30 days, or expired."""
    latest: dict[str, dt.date] = {}
    for e in entries:
        if e.kind == "health_check":
            who, until = e.body["caregiver_id"], dt.date.fromisoformat(e.body["expires"])
            latest[who] = max(latest.get(who, until), until)
    out = []
    for cid, name in caregivers.items():
        expiry = latest.get(cid)
        if expiry is None:
            out.append(Reminder(f"health:{cid}", "bad", f"{name}没有健康证记录"))
        elif expiry < today:
            out.append(Reminder(f"health:{cid}", "bad", f"{name}的健康证已过期（{expiry}）"))
        elif (expiry - today).days <= HEALTH_WARN_DAYS:
            days = (expiry - today).days
            out.append(Reminder(f"health:{cid}", "warn", f"{name}的健康证{days}天后到期"))
    return out


def previous_month(today: dt.date) -> str:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def notice_reminder(entries: list[Entry], today: dt.date) -> Reminder | None:
    """From the 1st until last month's notices are posted and have hung for 5 days."""
    month = previous_month(today)
    posted = [
        e.entry_date for e in entries if e.kind == "notice_posted" and e.body["month"] == month
    ]
    label = f"{int(month[5:])}月"
    if not posted:
        level = "bad" if today.day > NOTICE_DEADLINE_DAY else "warn"
        return Reminder("notice", level, f"请在{NOTICE_DEADLINE_DAY}日前打印并张贴{label}的公示")
    hung = (today - min(posted)).days
    if hung < NOTICE_MIN_DAYS:
        return Reminder("notice", "warn", f"{label}公示已张贴，请至少保留到第{NOTICE_MIN_DAYS}天")
    return None


def open_hazards(entries: list[Entry], today: dt.date) -> list[Reminder]:
    """Patrol hazards not closed; red once past their due date."""
    out = []
    for e in entries:
        if e.kind == "patrol" and e.body.get("hazards") and not e.body.get("closed"):
            due = dt.date.fromisoformat(e.body["due"])
            level = "bad" if due < today else "warn"
            out.append(Reminder(f"hazard:{e.entry_id}", level, f"隐患待整改（期限 {due}）"))
    return out


def active_caregivers(store: Store) -> dict[str, str]:
    """caregiver id -> name, of those who may still sign in."""
    with store.read() as s:
        rows = s.execute(select(Caregiver.caregiver_id, Caregiver.name).where(Caregiver.active))
        return {r.caregiver_id: r.name for r in rows}


# What the reminders read: a correction keeps its entry's kind, so the chains stay whole.
REMINDER_KINDS = ("expense", "notice_posted", "health_check", "patrol")
# Per database: (the books' head (seq, hash) when read, the entries in force of those kinds).
_in_force: dict[Path, tuple[tuple[int, str] | None, list[Entry]]] = {}


def _reminder_entries(books: Books) -> list[Entry]:
    """The entries in force that the reminders read, re-read only when the books change.

    The status bar asks on every poll; the books change a few times a day. Every new entry
    (a correction or void too) moves the head of the books' chain, so the head is the cache
    key: exact, one indexed row per poll instead of every entry ever made (132 ms a poll at
    3,000 entries, a year of purchases). The head is read first: entries read after it can
    only be newer, which the next poll sees as a change and reads again."""
    path = books.store.db_path
    with books.store.read() as s:
        row = s.execute(
            select(BookEntry.seq, BookEntry.hash).order_by(BookEntry.seq.desc()).limit(1)
        ).first()
    head = (row.seq, row.hash) if row is not None else None
    held = _in_force.get(path)
    if held is not None and held[0] == head:
        return held[1]
    entries = books.effective(REMINDER_KINDS)
    _in_force[path] = (head, entries)
    return entries


def reminders(books: Books, today: dt.date) -> list[Reminder]:
    """Everything about the books the caregiver should see on the status bar and /books."""
    entries = _reminder_entries(books)
    found = [
        key_food_reminder(entries, today),
        notice_reminder(entries, today),
        *health_reminders(entries, active_caregivers(books.store), today),
        *open_hazards(entries, today),
    ]
    return [r for r in found if r is not None]


def fees_owed(books: Books, store: Store, today: dt.date) -> list[tuple[str, str]]:
    """(elder id, name) of elders who ate last month and whose fee for it is not recorded.

    For the caregiver's eyes only (the /books page, behind the PIN): never on the public
    screen or a notice, and never a reason to refuse a meal.
    """
    month = previous_month(today)
    year, mon = int(month[:4]), int(month[5:])
    first = dt.date(year, mon, 1)
    last = dt.date(year, mon, calendar.monthrange(year, mon)[1])
    paid = {e.body["elder_id"] for e in books.effective(["meal_fee"]) if e.body["month"] == month}
    with store.read() as s:
        rows = s.execute(
            select(Elder.elder_id, Elder.name)
            .join(MealRecord, MealRecord.elder_id == Elder.elder_id)
            .where(
                MealRecord.service == "meal",
                MealRecord.service_date >= first,
                MealRecord.service_date <= last,
            )
            .distinct()
            .order_by(Elder.name)
        )
        return [(r.elder_id, r.name) for r in rows if r.elder_id not in paid]
