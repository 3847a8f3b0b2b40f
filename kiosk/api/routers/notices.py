"""The notice board (公示): GET /notices, POST /notices/menu, the monthly diner list and exports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, render
from kiosk.api.routers.books import books_of
from kiosk.api.routers.caregiver import get_book
from kiosk.checkin.schedule import SLOT_LABELS
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.book_notice import notice_context
from kiosk.touchscreen.books import previous_month
from kiosk.touchscreen.caregivers import ROLES
from kiosk.touchscreen.notices import (
    WEEKDAYS,
    chart_svg,
    header,
    monthly_report,
    parse_month,
    set_menu,
    table_rows,
    to_csv,
    to_xlsx,
    totals_row,
    week_start,
    weekly_menu,
)

router = APIRouter(tags=["notices"])

PROCEDURE = [
    "到点后刷卡或刷脸签到，听到“请用餐”即可用餐",
    "忘带卡或认不出，请找护理员人工签到",
    "行动不便的老人可由护理员送餐上门",
]


def _previous_month(today: dt.date) -> str:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year}-{first.month:02d}"


def _month(services: KioskServices, month: str | None) -> tuple[int, int]:
    try:
        return parse_month(month or _previous_month(services.now().date()))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/notices", response_class=HTMLResponse)
def notices_page(request: Request, services: ServicesDep, edit: bool = False) -> HTMLResponse:
    config = services.config
    today = services.now().date()
    monday = week_start(today)
    menu = weekly_menu(services.store, monday)
    slots = [s.name for s in config.meal.slots] if config.meal.enabled else []
    days = [monday + dt.timedelta(days=i) for i in range(7)]
    people = [
        {"name": c.name, "role": ROLES[c.role], "phone": c.phone} for c in get_book(request).all()
    ]
    hours = [
        {"label": SLOT_LABELS.get(s.name, s.name), "hours": f"{s.start:%H:%M}–{s.end:%H:%M}"}
        for s in config.slots_for("meal")
    ]
    cleaning = [f"{s.start:%H:%M}–{s.end:%H:%M}" for s in config.slots_for("cleaning")]
    return render(
        request,
        "notices.html",
        {
            "page": "notices",
            "people": people,
            "hours": hours,
            "cleaning": cleaning,
            "procedure": PROCEDURE,
            "days": [
                {"date": d, "weekday": WEEKDAYS[i], "today": d == today} for i, d in enumerate(days)
            ],
            "slots": [{"name": s, "label": SLOT_LABELS.get(s, s)} for s in slots],
            "menu": {f"{d.isoformat()}|{s}": text for (d, s), text in menu.items()},
            "edit": edit,
            "monday": monday,
            **_last_month(services, today),
        },
    )


def _last_month(services: KioskServices, today: dt.date) -> dict[str, Any]:
    """Last month's notices on the board: whether they are up, the 光荣榜, donations, 助洁."""
    month = previous_month(today)
    books = books_of(services)
    posted = [e.entry_date for e in books.effective(["notice_posted"]) if e.body["month"] == month]
    return {
        "prev": month,
        "prev_label": f"{int(month[5:])}月",
        "posted_on": min(posted) if posted else None,
        "posted_days": (today - min(posted)).days if posted else 0,
        "last": notice_context(books, services.store, int(month[:4]), int(month[5:])),
    }


@router.post("/notices/menu")
def save_menu(
    services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> RedirectResponse:
    slots = {s.name for s in services.config.meal.slots}
    entries: list[tuple[dt.date, str, str]] = []
    for key, value in form.items():  # check every key first: a bad one changes nothing
        if not key.startswith("menu|"):
            continue
        parts = key.split("|")
        if len(parts) != 3:
            raise HTTPException(422, f"menu field {key[:40]!r}: expected menu|YYYY-MM-DD|slot")
        _, day_text, slot = parts
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            raise HTTPException(422, f"menu field {key[:40]!r}: not a date") from None
        if slot not in slots:
            raise HTTPException(422, f"unknown slot {slot[:20]!r}")
        entries.append((day, slot, value))
    for day, slot, value in entries:
        set_menu(services.store, day, slot, value, services.now())
    return RedirectResponse("/notices", status_code=303)


@router.get("/notices/monthly", response_class=HTMLResponse)
def monthly_page(
    request: Request, services: ServicesDep, month: str | None = Query(default=None)
) -> HTMLResponse:
    year, mon = _month(services, month)
    report = monthly_report(services.store, year, mon)
    return render(
        request,
        "monthly.html",
        {
            "page": "monthly",
            "report": report,
            "month": f"{year}-{mon:02d}",
            "header": header(report),
            "rows": table_rows(report),
            "totals": totals_row(report),
            "fixed_cols": 6 + len(report.slots),
            "chart": Markup(chart_svg(report)),
            "printed": services.now(),
        },
    )


@router.get("/notices/monthly.csv")
def monthly_csv(services: ServicesDep, month: str | None = Query(default=None)) -> Response:
    year, mon = _month(services, month)
    body = to_csv(monthly_report(services.store, year, mon))
    name = f"monthly-{year}-{mon:02d}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/notices/monthly.xlsx")
def monthly_xlsx(services: ServicesDep, month: str | None = Query(default=None)) -> Response:
    year, mon = _month(services, month)
    body = to_xlsx(monthly_report(services.store, year, mon), services.config.site.name)
    name = f"monthly-{year}-{mon:02d}.xlsx"
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
