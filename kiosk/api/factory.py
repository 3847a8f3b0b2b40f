"""The FastAPI app factory: takes the kiosk's running parts, so tests build it with fakes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kiosk import STATIC_DIR, __version__
from kiosk.api.guards import GuardPolicy, RequestGuard, default_hosts
from kiosk.api.pages_common import MAX_FORM_BYTES, NeedsCaregiver, login_redirect_url
from kiosk.api.routers import (
    books,
    camera,
    card_binding,
    caregiver,
    checkin_screen,
    elders,
    enrol,
    events,
    headcount,
    health,
    manual,
    metrics,
    missing,
    notices,
    pinyin,
    safety,
    simulate,
    statusbar,
)
from kiosk.checkin.metrics import Metrics
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.receipts import MAX_BYTES as RECEIPT_MAX_BYTES
from kiosk.touchscreen.web_auth import Signer, load_or_create_secret

STATIC = STATIC_DIR
SIMULATE_PREFIX = "/api/simulate"
SIMULATE_MAX_BYTES = 1024  # a card number and a reader name


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with what was wrong. FastAPI's own handler echoes the raw body back and answers 500
    when that body is not UTF-8 (found by tests/faults/test_fuzz.py)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _needs_caregiver(request: Request, exc: Exception) -> Response:
    """A page asked for without the caregiver session goes to the PIN screen; the API says 401."""
    assert isinstance(exc, NeedsCaregiver)
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(login_redirect_url(exc.next_url), status_code=303)
    return JSONResponse({"detail": "caregiver PIN required"}, status_code=401)


def create_app(services: KioskServices) -> FastAPI:
    app = FastAPI(title="Haolinju Kiosk", version=__version__)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.state.services = services
    # Checked at start: a symlinked or world-readable web secret stops the daemon with its
    # reason, instead of failing a caregiver's first page.
    app.state.signer = Signer(load_or_create_secret(services.data_dir))
    app.state.metrics = Metrics()
    services.bus.add_listener(app.state.metrics.observe)
    # Every router of the app, here and nowhere else. The check-in view faces the room:
    app.include_router(checkin_screen.router)  # GET /: the touchscreen page
    app.include_router(events.router)  # GET /api/events: check-in results, server-sent
    app.include_router(headcount.router)  # GET /api/headcount: this slot's count, latest
    app.include_router(statusbar.router)  # GET /api/statusbar: devices, uploads, reminders
    app.include_router(missing.router)  # /missing, /api/missing: not yet come (masked)
    # For the technician and the monitoring:
    app.include_router(health.router)  # GET /api/health: database, readers, camera, queue
    app.include_router(metrics.router)  # GET /metrics: Prometheus text
    if services.readers.find("simulated"):  # demo and tests only
        app.include_router(simulate.router)  # POST /api/simulate/tap
    # The caregiver's screens, behind her PIN session (NeedsCaregiver -> the PIN page):
    app.include_router(caregiver.router)  # /caregiver/login, /caregiver/logout
    app.include_router(manual.router)  # /manual, POST /api/manual-checkin
    app.include_router(elders.router)  # GET /api/elders: by name or pinyin initials
    app.include_router(notices.router)  # /notices: 公示, weekly menu, monthly diner list
    app.include_router(books.router)  # /books, /notices/books*: the village's books
    app.include_router(pinyin.router)  # GET /api/pinyin: the on-screen pinyin keyboard
    app.include_router(safety.router)  # /safety: 留样, weekly inspection, monthly 台账
    app.include_router(enrol.router)  # /enrol, /api/enrol*: face enrolment
    app.include_router(camera.router)  # GET /api/camera/snapshot.jpg: enrolment preview
    app.include_router(card_binding.router)  # /api/card-binding*: bind the next new card
    app.add_exception_handler(NeedsCaregiver, _needs_caregiver)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_guards(app, services)
    return app


def _add_guards(app: FastAPI, services: KioskServices) -> None:
    """Host, origin, loopback-only and body-size checks before any body is read; X-Forwarded-For
    believed only from `web.trusted_proxies` (the daemon runs uvicorn without proxy headers)."""
    web = services.config.web
    policy = GuardPolicy(
        allowed_hosts=default_hosts(web.host, web.allowed_hosts),
        body_limits=(
            (SIMULATE_PREFIX, SIMULATE_MAX_BYTES),
            ("/books/receipt", RECEIPT_MAX_BYTES),  # a photo, checked again when stored
        ),
        default_body_limit=MAX_FORM_BYTES,
        loopback_only=(SIMULATE_PREFIX,),
    )
    app.add_middleware(RequestGuard, policy=policy)
    if web.trusted_proxies:  # added last: outermost, so the guard sees the forwarded peer
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(web.trusted_proxies))
