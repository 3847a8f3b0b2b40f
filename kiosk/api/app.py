"""The FastAPI app factory: takes the kiosk's running parts, so tests build it with fakes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kiosk import __version__
from kiosk.api import events, headcount, health, metrics, pages, simulate
from kiosk.api.ui import include_ui
from kiosk.metrics import Metrics
from kiosk.services import KioskServices

STATIC = Path(__file__).parent.parent / "static"


def create_app(services: KioskServices) -> FastAPI:
    app = FastAPI(title="Haolinju Kiosk", version=__version__)
    app.state.services = services
    app.state.metrics = Metrics()
    services.bus.add_listener(app.state.metrics.observe)
    app.include_router(pages.router)
    app.include_router(headcount.router)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(metrics.router)
    if services.readers.find("simulated"):
        app.include_router(simulate.router)
    include_ui(app)  # caregiver screens: missing, manual check-in, notices
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
