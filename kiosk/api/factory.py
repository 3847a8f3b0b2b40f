"""The FastAPI app factory: takes the kiosk's running parts, so tests build it with fakes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from kiosk import STATIC_DIR, __version__
from kiosk.api.routers import (
    checkin_screen,
    events,
    headcount,
    health,
    include_ui,
    metrics,
    simulate,
)
from kiosk.checkin.metrics import Metrics
from kiosk.runtime.services import KioskServices

STATIC = STATIC_DIR


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with what was wrong. FastAPI's own handler echoes the raw body back and answers 500
    when that body is not UTF-8 (found by tests/faults/test_fuzz.py)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def create_app(services: KioskServices) -> FastAPI:
    app = FastAPI(title="Haolinju Kiosk", version=__version__)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.state.services = services
    app.state.metrics = Metrics()
    services.bus.add_listener(app.state.metrics.observe)
    app.include_router(checkin_screen.router)
    app.include_router(headcount.router)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(metrics.router)
    if services.readers.find("simulated"):
        app.include_router(simulate.router)
    include_ui(app)  # caregiver screens: missing, manual check-in, notices
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
