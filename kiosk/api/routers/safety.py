"""Safety ledgers (安监台账) on the touchscreen (the status bar's reminders: statusbar.py).

GET /safety                  overview: today's 留样, this week's inspection, buttons   (session)
GET/POST /safety/sample      today's 留样 entry: slot, dishes (from the menu), time       (session)
GET/POST /safety/inspection  this week's checklist (five items), problems, fixed     (session)
GET /safety/ledger?month=    the printable monthly 台账 (A4 portrait)                   (everyone)
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, render
from kiosk.api.routers.books import books_of
from kiosk.checkin.schedule import SLOT_LABELS
from kiosk.config import SlotConfig
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.ledgers import (
    CHECK_VALUES,
    INSPECTION_ITEMS,
    SAMPLE_KEEP_HOURS,
    SHORT_ITEM_LABELS,
    LedgerError,
    inspections_between,
    month_ledger,
    record_inspection,
    record_sample,
    samples_between,
    today_status,
)
from kiosk.touchscreen.notices import parse_month, week_start, weekly_menu
from models.tables import MealRecord

router = APIRouter(tags=["safety"])

SAVED = {"sample": "留样已登记", "inspection": "本周安全检查已登记"}


def _meal_slots(services: KioskServices) -> list[SlotConfig]:
    return sorted(services.config.slots_for("meal"), key=lambda s: s.start)


def _default_slot(services: KioskServices, now: dt.datetime) -> str:
    """The slot open now, else the last one begun today, else the first."""
    slots = _meal_slots(services)
    if not slots:
        return ""
    begun = [s for s in slots if s.start <= now.time()]
    return (begun[-1] if begun else slots[0]).name


def _first_slot_start(services: KioskServices) -> dt.time | None:
    slots = _meal_slots(services)
    return slots[0].start if slots else None


@router.get("/safety", response_class=HTMLResponse)
def safety_page(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, saved: str = ""
) -> HTMLResponse:
    now = services.now()
    today = now.date()
    status = today_status(services.store, now, _first_slot_start(services))
    week = inspections_between(services.store, today, today)
    return render(
        request,
        "safety.html",
        {
            "page": "safety",
            "saved": SAVED.get(saved, ""),
            "today": today,
            "samples": samples_between(services.store, today, today),
            "inspection": next((i for i in week if i.week_start == week_start(today)), None),
            "status": status,
            "items": SHORT_ITEM_LABELS,
            "month": f"{today.year}-{today.month:02d}",
        },
    )


def _sample_form(
    request: Request, services: KioskServices, form: dict[str, str] | None = None, error: str = ""
) -> HTMLResponse:
    now = services.now()
    today = now.date()
    menu = weekly_menu(services.store, week_start(today))
    slots = [
        {
            "name": s.name,
            "label": SLOT_LABELS.get(s.name, s.name),
            "dishes": menu.get((today, s.name), ""),
        }
        for s in _meal_slots(services)
    ]
    chosen = (form or {}).get("slot") or _default_slot(services, now)
    dishes = (form or {}).get("dishes")
    if dishes is None:
        dishes = next((s["dishes"] for s in slots if s["name"] == chosen), "")
    return render(
        request,
        "safety_sample.html",
        {
            "page": "safety",
            "today": today,
            "slots": slots,
            "chosen": chosen,
            "dishes": dishes,
            "time": (form or {}).get("time") or f"{now:%H:%M}",
            "kept": (form or {}).get("kept", "yes"),
            "note": (form or {}).get("note", ""),
            "keep_hours": SAMPLE_KEEP_HOURS,
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.get("/safety/sample", response_class=HTMLResponse)
def sample_page(request: Request, services: ServicesDep, caregiver: CaregiverDep) -> HTMLResponse:
    return _sample_form(request, services)


@router.post("/safety/sample")
def sample_submit(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> Response:
    now = services.now()
    try:
        try:
            hh, mm = (int(p) for p in form.get("time", "").split(":")[:2])
            at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        except ValueError:
            raise LedgerError("请填写留样时间") from None
        record_sample(
            services.store,
            caregiver_id=caregiver.caregiver_id,
            service_date=now.date(),
            slot=form.get("slot", ""),
            dishes=form.get("dishes", ""),
            at=at,
            now=now,
            sample_kept=form.get("kept", "yes") != "no",
            note=form.get("note", ""),
            slots={s.name for s in _meal_slots(services)},
        )
    except LedgerError as exc:
        return _sample_form(request, services, form, str(exc))
    return RedirectResponse("/safety?saved=sample", status_code=303)


def _inspection_form(
    request: Request, services: KioskServices, form: dict[str, str] | None = None, error: str = ""
) -> HTMLResponse:
    today = services.now().date()
    current = None
    if form is None:
        week = inspections_between(services.store, today, today)
        current = next((i for i in week if i.week_start == week_start(today)), None)
    values = (
        {k: (form or {}).get(f"check_{k}", "") for k in INSPECTION_ITEMS}
        if current is None
        else dict(current.checks)
    )
    return render(
        request,
        "safety_inspection.html",
        {
            "page": "safety",
            "monday": week_start(today),
            "items": INSPECTION_ITEMS,
            "short": SHORT_ITEM_LABELS,
            "values": values,
            "choices": CHECK_VALUES,
            "problems": current.problems if current else (form or {}).get("problems", ""),
            "fixed": current.fixed if current else (form or {}).get("fixed", ""),
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.get("/safety/inspection", response_class=HTMLResponse)
def inspection_page(
    request: Request, services: ServicesDep, caregiver: CaregiverDep
) -> HTMLResponse:
    return _inspection_form(request, services)


@router.post("/safety/inspection")
def inspection_submit(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> Response:
    try:
        record_inspection(
            services.store,
            caregiver_id=caregiver.caregiver_id,
            day=services.now().date(),
            checks={k: form.get(f"check_{k}", "") for k in INSPECTION_ITEMS},
            problems=form.get("problems", ""),
            fixed=form.get("fixed", ""),
            now=services.now(),
        )
    except LedgerError as exc:
        return _inspection_form(request, services, form, str(exc))
    return RedirectResponse("/safety?saved=inspection", status_code=303)


@router.get("/safety/ledger", response_class=HTMLResponse)
def ledger_page(request: Request, services: ServicesDep, month: str | None = None) -> HTMLResponse:
    now = services.now()
    try:
        year, mon = parse_month(month or f"{now.year}-{now.month:02d}")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    ledger = month_ledger(services.store, year, mon)
    first = dt.date(year, mon, 1)
    last = dt.date(year, mon, ledger.days)
    with services.store.read() as s:
        served = set(
            s.scalars(
                select(MealRecord.service_date)
                .where(
                    MealRecord.service == "meal",
                    MealRecord.service_date >= first,
                    MealRecord.service_date <= last,
                )
                .distinct()
            ).all()
        )
    return render(
        request,
        "safety_ledger.html",
        {
            "page": "safety",
            "ledger": ledger,
            "month": f"{year}-{mon:02d}",
            "items": SHORT_ITEM_LABELS,
            "gaps": ledger.days_without_sample(served, now.date()),
            "printed": now,
            "keep_hours": SAMPLE_KEEP_HOURS,
            # 四: the township's monthly patrol belongs in the safety 台账 too.
            "patrols": [
                e for e in books_of(services).effective(["patrol"]) if first <= e.entry_date <= last
            ],
        },
    )
