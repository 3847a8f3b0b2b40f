"""The caregiver's screens, added to the app in one call: `include_ui(app)`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from kiosk.api.pages_common import NeedsCaregiver, login_redirect_url
from kiosk.api.routers import books, caregiver, enrol, manual, missing, notices, safety

ROUTERS = [
    missing.router,
    caregiver.router,
    manual.router,
    notices.router,
    safety.router,  # safety ledgers (安监台账) and the check-in status bar
    enrol.router,  # face enrolment and card binding
    books.router,  # the village's books (开支、捐赠、伙食费、健康证、巡查) and their 公示
]


async def _needs_caregiver(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NeedsCaregiver)
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(login_redirect_url(exc.next_url), status_code=303)
    return JSONResponse({"detail": "caregiver PIN required"}, status_code=401)


def include_ui(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(NeedsCaregiver, _needs_caregiver)
