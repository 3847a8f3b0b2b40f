"""The public notices (公示) the county requires (中民发〔2024〕3号, 五、公示规范化).

Posted permanently: the person in charge and the caregivers, serving hours, the procedure, the
weekly menu. Posted monthly (before the 10th, for at least 5 days): the diner list of the
previous month (每月用餐人员明细) — here per elder the days and meals, with totals, as a
printable A4 page, CSV and XLSX, and a chart of meals per day and per slot.

Names are printed in full (the list exists so villagers can check it); ID numbers only as
1426**********1234.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from html import escape

from sqlalchemy import select

from kiosk.checkin.schedule import SLOT_LABELS
from kiosk.touchscreen.cells import csv_cell, xlsx_row_as_text
from kiosk.touchscreen.masking import mask_id_number
from models.db import Store
from models.tables import Elder, MealRecord, MenuItem

SLOT_ORDER = ["breakfast", "lunch", "dinner"]
SLOT_COLOURS = {"breakfast": "#b26a00", "lunch": "#8b1a1a", "dinner": "#1f4e8c"}


def parse_month(value: str) -> tuple[int, int]:
    try:
        year, month = (int(p) for p in value.split("-"))
        dt.date(year, month, 1)
    except ValueError:
        raise ValueError(f"month must look like 2026-11, got {value!r}") from None
    return year, month


@dataclass
class DinerRow:
    elder_id: str
    name: str
    group: str
    id_number: str  # masked
    meals_by_day: dict[int, int] = field(default_factory=dict)  # day of month -> meals
    slots: dict[str, int] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return len(self.meals_by_day)

    @property
    def meals(self) -> int:
        return sum(self.meals_by_day.values())


@dataclass
class MonthlyReport:
    year: int
    month: int
    slots: list[str]
    rows: list[DinerRow]
    per_day: dict[int, dict[str, int]]  # day -> slot -> meals

    @property
    def days_in_month(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def title(self) -> str:
        return f"{self.year}年{self.month}月用餐人员明细"

    @property
    def total_meals(self) -> int:
        return sum(r.meals for r in self.rows)

    @property
    def total_days(self) -> int:
        return sum(r.days for r in self.rows)

    def slot_total(self, slot: str) -> int:
        return sum(r.slots.get(slot, 0) for r in self.rows)

    def day_total(self, day: int) -> int:
        return sum(self.per_day.get(day, {}).values())


def monthly_report(store: Store, year: int, month: int, service: str = "meal") -> MonthlyReport:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    with store.read() as s:
        records = s.execute(
            select(
                MealRecord.elder_id,
                MealRecord.service_date,
                MealRecord.slot,
                Elder.name,
                Elder.group_name,
                Elder.id_number_masked,
            )
            .join(Elder)
            .where(
                MealRecord.service == service,
                MealRecord.service_date >= first,
                MealRecord.service_date <= last,
            )
        ).all()
    rows: dict[str, DinerRow] = {}
    per_day: dict[int, dict[str, int]] = {}
    slots: set[str] = set()
    for elder_id, day, slot, name, group, id_masked in records:
        row = rows.setdefault(elder_id, DinerRow(elder_id, name, group, mask_id_number(id_masked)))
        row.meals_by_day[day.day] = row.meals_by_day.get(day.day, 0) + 1
        row.slots[slot] = row.slots.get(slot, 0) + 1
        per_day.setdefault(day.day, {}).setdefault(slot, 0)
        per_day[day.day][slot] += 1
        slots.add(slot)
    ordered = sorted(rows.values(), key=lambda r: (r.group, r.elder_id))
    slot_list = [s for s in SLOT_ORDER if s in slots] + sorted(slots - set(SLOT_ORDER))
    return MonthlyReport(year, month, slot_list or ["lunch"], ordered, per_day)


# ----------------------------------------------------------------------------- exports


def header(report: MonthlyReport) -> list[str]:
    return [
        "序号",
        "姓名",
        "村民小组",
        "身份证号",
        "用餐天数",
        *[f"{SLOT_LABELS.get(s, s)}次数" for s in report.slots],
        "用餐总次数",
        *[str(d) for d in range(1, report.days_in_month + 1)],
    ]


def table_rows(report: MonthlyReport) -> list[list[object]]:
    out: list[list[object]] = []
    for i, r in enumerate(report.rows, 1):
        out.append(
            [
                i,
                r.name,
                r.group,
                r.id_number,
                r.days,
                *[r.slots.get(s, 0) for s in report.slots],
                r.meals,
                *[r.meals_by_day.get(d, "") for d in range(1, report.days_in_month + 1)],
            ]
        )
    return out


def totals_row(report: MonthlyReport) -> list[object]:
    return [
        "合计",
        f"{len(report.rows)}人",
        "",
        "",
        report.total_days,
        *[report.slot_total(s) for s in report.slots],
        report.total_meals,
        *[report.day_total(d) or "" for d in range(1, report.days_in_month + 1)],
    ]


def to_csv(report: MonthlyReport) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([report.title])
    w.writerow(header(report))
    # Names and groups come from the roster: never let one be read as a formula.
    w.writerows([csv_cell(v) for v in row] for row in table_rows(report))
    w.writerow([csv_cell(v) for v in totals_row(report)])
    return buf.getvalue().encode("utf-8-sig")  # BOM: Excel on a village PC opens it right


def to_xlsx(report: MonthlyReport, site_name: str = "") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = f"{report.year}-{report.month:02d}"
    cols = header(report)
    ws.append([f"{site_name} {report.title}".strip()])
    xlsx_row_as_text(ws[1])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(cols))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append(cols)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for row in table_rows(report):
        ws.append([None if v == "" else v for v in row])
        xlsx_row_as_text(ws[ws.max_row])  # a roster name is text, never a formula
    ws.append([None if v == "" else v for v in totals_row(report)])
    xlsx_row_as_text(ws[ws.max_row])
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    widths = {1: 6, 2: 10, 3: 10, 4: 20, 5: 9}
    for i in range(1, len(cols) + 1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(
            i, 4 if i > 5 + len(report.slots) + 1 else 10
        )
    ws.freeze_panes = "C3"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def chart_svg(report: MonthlyReport, width: int = 1000, height: int = 300) -> str:
    """Meals per day, stacked by slot, with the slot totals in the legend."""
    days = report.days_in_month
    left, bottom, top = 56, 34, 44
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((report.day_total(d) for d in range(1, days + 1)), default=0) or 1
    step = max(1, -(-peak // 4))
    scale_max = step * 4
    bar_w = plot_w / days
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-label="{escape(report.title)}：每日用餐人次">'
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccc"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 6:.1f}" text-anchor="end" '
            f'font-size="24">{step * i}</text>'
        )
    for d in range(1, days + 1):
        x = left + (d - 1) * bar_w
        y = top + plot_h
        for slot in report.slots:
            n = report.per_day.get(d, {}).get(slot, 0)
            if not n:
                continue
            h = plot_h * n / scale_max
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{SLOT_COLOURS.get(slot, "#555")}"><title>{d}日 '
                f"{SLOT_LABELS.get(slot, slot)} {n}</title></rect>"
            )
        if d == 1 or d % 5 == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" '
                f'font-size="24">{d}</text>'
            )
    lx = left
    for slot in report.slots:
        label = f"{SLOT_LABELS.get(slot, slot)} {report.slot_total(slot)} 人次"
        parts.append(
            f'<rect x="{lx}" y="8" width="22" height="22" fill="{SLOT_COLOURS.get(slot, "#555")}"/>'
        )
        parts.append(f'<text x="{lx + 28}" y="28" font-size="24">{escape(label)}</text>')
        lx += 24 + 24 * len(label) + 24
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------- weekly menu


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]


def weekly_menu(store: Store, monday: dt.date) -> dict[tuple[dt.date, str], str]:
    with store.read() as s:
        items = s.scalars(
            select(MenuItem).where(
                MenuItem.day >= monday, MenuItem.day < monday + dt.timedelta(days=7)
            )
        ).all()
    return {(i.day, i.slot): i.dishes for i in items}


def set_menu(
    store: Store, day: dt.date, slot: str, dishes: str, now: dt.datetime, source: str = "local"
) -> None:
    with store.write() as s:
        item = s.get(MenuItem, (day, slot))
        if item is None:
            item = MenuItem(day=day, slot=slot)
            s.add(item)
        item.dishes, item.source, item.updated_at = dishes.strip()[:200], source, now
