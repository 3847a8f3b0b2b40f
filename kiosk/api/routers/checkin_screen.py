"""The touchscreen page (server-rendered, updated live by /api/events)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import TEMPLATES  # with the masking filters
from kiosk.api.routers.headcount import headcount_json
from kiosk.checkin.headcount import headcount

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def checkin_page(request: Request, services: ServicesDep) -> HTMLResponse:
    hc = headcount_json(headcount(services.config, services.store, services.now()))
    last = services.bus.recent("checkin", 1)
    return TEMPLATES.TemplateResponse(
        request,
        "checkin.html",
        {
            "site": services.config.site,
            "hc": hc,
            "last": last[0].data if last else None,
        },
    )
