"""The month's books as the notice board shows them (中民发〔2024〕3号 五, 六): purchases and
spending, income against spending, cost per meal, the share of 肉/蛋/奶/蔬菜, donations, the
meal-fee 光荣榜, the 助洁 procedure with the month's 助洁 per elder, and the township patrols.

Who paid an overdue fee is never shown here: the 光荣榜 lists only those who paid, and only
children, guardians and the village (an elder paying for himself is not an honour to post).
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from kiosk.touchscreen.books import (
    EXPENSE_CATEGORIES,
    KEY_FOODS,
    Books,
    Entry,
    month_books,
)
from models.db import Store
from models.tables import Elder, MealRecord

HONOURED = ("子女", "监护人", "村集体")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A spreadsheet cell that can never be a formula: text starting like one is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _elder_names(store: Store) -> dict[str, str]:
    with store.read() as s:
        return {row.elder_id: row.name for row in s.execute(select(Elder.elder_id, Elder.name))}


def _cleaning_by_elder(store: Store, first: dt.date, last: dt.date) -> dict[str, list[dt.date]]:
    with store.read() as s:
        rows = s.execute(
            select(MealRecord.elder_id, MealRecord.service_date)
            .where(
                MealRecord.service == "cleaning",
                MealRecord.service_date >= first,
                MealRecord.service_date <= last,
            )
            .order_by(MealRecord.service_date)
        )
        out: dict[str, list[dt.date]] = defaultdict(list)
        for elder_id, day in rows:
            out[elder_id].append(day)
        return dict(out)


def notice_context(books: Books, store: Store, year: int, month: int) -> dict[str, Any]:
    summary = month_books(books, store, year, month)
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    names = _elder_names(store)
    everything = books.effective()
    procedures = [e for e in everything if e.kind == "cleaning_procedure"]
    patrols = [e for e in everything if e.kind == "patrol" and first <= e.entry_date <= last]
    honour = sorted(
        (e for e in summary.meal_fees if e.body["payer_relation"] in HONOURED),
        key=lambda e: e.entry_date,
    )
    cleaning = _cleaning_by_elder(store, first, last)
    return {
        "month": f"{year:04d}-{month:02d}",
        "m": summary,
        "categories": summary.by_category(),
        "category_order": EXPENSE_CATEGORIES,
        "shares": summary.key_food_shares(),
        "key_foods": KEY_FOODS,
        "donations": summary.donations,
        "honour": [
            {
                "payer": e.body["payer_name"],
                "relation": e.body["payer_relation"],
                "elder": names.get(e.body["elder_id"], e.body["elder_id"]),
            }
            for e in honour
        ],
        "procedure": procedures[-1] if procedures else None,
        "cleaning": [
            {"elder": names.get(k, k), "days": v, "count": len(v)}
            for k, v in sorted(cleaning.items(), key=lambda kv: names.get(kv[0], kv[0]))
        ],
        "patrols": patrols,
    }


def _expense_row(e: Entry) -> list[object]:
    b = e.body
    qty = f"{b['quantity']}{b['unit']}" if b.get("quantity") else ""
    kind = b["category"] + (f"·{b['food_type']}" if b.get("food_type") else "")
    return [e.entry_date.isoformat(), kind, b["item"], qty, b["amount"], b["supplier"], b["buyer"]]


EXPENSE_HEADER: list[object] = ["日期", "类别", "品名", "数量", "金额（元）", "供应商", "采购人"]


def _rows(ctx: dict[str, Any]) -> list[list[object]]:
    """The notice as one table: purchases, totals, income, per-meal cost, donations, 光荣榜."""
    m = ctx["m"]
    rows: list[list[object]] = [[f"{m.label} 食材采购清单和各项开支"], EXPENSE_HEADER]
    rows += [_expense_row(e) for e in m.expenses]
    rows.append([])
    rows.append(["类别合计"])
    rows += [[c, str(v)] for c, v in ctx["categories"].items()]
    rows.append(["支出合计", str(m.spending)])
    rows.append(["收入"])
    rows += [[k, str(v)] for k, v in m.income_by_source.items()]
    rows.append(["收入合计", str(m.income)])
    rows.append(["结余", str(m.income - m.spending)])
    rows.append(["本月供餐（人次）", m.meals_served])
    rows.append(["每餐成本（元）", str(m.cost_per_meal) if m.cost_per_meal is not None else ""])
    rows.append(["肉蛋奶蔬菜占食材支出（%）"])
    rows += [[k, str(v)] for k, v in ctx["shares"].items()]
    rows.append([])
    rows.append(["捐赠", "捐赠人", "钱/物", "用途", "接收仪式"])
    for d in ctx["donations"]:
        b = d.body
        what = (
            f"{b['amount']}元"
            if b["what"] == "money"
            else f"{b['goods']}{b['quantity']}{b['unit']}"
        )
        rows.append([d.entry_date.isoformat(), b["donor"], what, b["purpose"], b["ceremony_date"]])
    rows.append([])
    rows.append(["光荣榜", "缴费人", "关系", "老人"])
    rows += [["", h["payer"], h["relation"], h["elder"]] for h in ctx["honour"]]
    return rows


def books_csv(ctx: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in _rows(ctx):
        writer.writerow([safe_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel opens Chinese CSV right


def books_xlsx(ctx: dict[str, Any], site_name: str = "") -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has one sheet
    ws.title = "开支公示"
    if site_name:
        ws.append([safe_cell(site_name)])
    for row in _rows(ctx):
        ws.append([safe_cell(_number(v)) for v in row])
    for col, width in zip("ABCDEFG", (12, 12, 14, 10, 12, 16, 10), strict=True):
        ws.column_dimensions[col].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _number(value: object) -> object:
    """Amounts as exact decimals in the sheet (openpyxl writes Decimal as a number)."""
    if isinstance(value, str):
        try:
            return Decimal(value) if value and value.replace(".", "", 1).isdigit() else value
        except ArithmeticError:
            return value
    return value
