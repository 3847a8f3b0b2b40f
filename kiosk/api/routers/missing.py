"""Who is missing for the current meal: GET /missing (page) and GET /api/missing (JSON).

Without a caregiver session names and phones are masked (the screen faces the room); with one
the caregiver sees them in full, the phone as a tap-to-call link.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import OptionalCaregiverDep, render
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.masking import mask_name, mask_phone
from kiosk.touchscreen.missing import MissingReport, missing_diners

router = APIRouter(tags=["missing"])


def missing_json(report: MissingReport, full: bool) -> dict[str, Any]:
    w = report.window
    return {
        "slot": w.slot if w else None,
        "label": w.label if w else None,
        "service_date": w.service_date.isoformat() if w else None,
        "min_days": report.min_days,
        "of_last": report.of_last,
        "service_days": [d.isoformat() for d in report.service_days],
        "regulars": report.regulars,
        "count": len(report.missing),
        "masked": not full,
        "missing": [
            {
                "elder_id": m.elder_id,
                "name": m.name if full else mask_name(m.name),
                "group": m.group_name,
                "phone": m.contact_phone if full else mask_phone(m.contact_phone),
                "days_eaten": m.days_eaten,
                "last_seen": m.last_seen.isoformat() if m.last_seen else None,
            }
            for m in report.missing
        ],
    }


def _report(services: KioskServices, min_days: int | None, of_last: int | None) -> MissingReport:
    if min_days and of_last and min_days > of_last:
        min_days = of_last
    return missing_diners(services.config, services.store, services.now(), min_days, of_last)


@router.get("/api/missing")
def get_missing(
    services: ServicesDep,
    caregiver: OptionalCaregiverDep,
    min_days: int | None = Query(default=None, ge=1, le=60),
    of_last: int | None = Query(default=None, ge=1, le=60),
) -> dict[str, Any]:
    return missing_json(_report(services, min_days, of_last), full=caregiver is not None)


@router.get("/missing", response_class=HTMLResponse)
def missing_page(
    request: Request,
    services: ServicesDep,
    caregiver: OptionalCaregiverDep,
    min_days: int | None = Query(default=None, ge=1, le=60),
    of_last: int | None = Query(default=None, ge=1, le=60),
) -> HTMLResponse:
    data = missing_json(_report(services, min_days, of_last), full=caregiver is not None)
    return render(request, "missing.html", {"m": data, "page": "missing"})
