"""Caregiver sign-in with her PIN: GET/POST /caregiver/login, POST /caregiver/logout."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kiosk.api.pages_common import CheckedForm, get_sessions, get_signer, render, set_cookie
from kiosk.touchscreen.caregivers import CaregiverBook
from kiosk.touchscreen.web_auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_nonce,
    session_id,
    session_token,
)

router = APIRouter(tags=["caregiver"])
_book_lock = threading.Lock()


def get_book(request: Request) -> CaregiverBook:
    state = request.app.state
    with _book_lock:
        book = getattr(state, "caregivers", None)
        if book is None:
            services = state.services
            book = CaregiverBook(services.store, services.config.ui, services.now)
            state.caregivers = book
    return book


def _safe_next(value: str | None) -> str:
    # Only paths on this page: never an open redirect to another site.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/manual"


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _login_page(
    request: Request, next_url: str, message: str = "", chosen: str = "", status: int = 200
) -> HTMLResponse:
    caregivers = [
        {"id": c.caregiver_id, "name": c.name, "role": c.role} for c in get_book(request).all()
    ]
    return render(
        request,
        "login.html",
        {
            "caregivers": caregivers,
            "next": next_url,
            "message": message,
            "chosen": chosen or (caregivers[0]["id"] if len(caregivers) == 1 else ""),
            "page": "login",
        },
        status_code=status,
    )


@router.get("/caregiver/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, _safe_next(next))


@router.post("/caregiver/login")
def login(request: Request, form: CheckedForm) -> Response:
    next_url = _safe_next(form.get("next"))
    caregiver_id = form.get("caregiver_id", "")
    client = request.client.host if request.client else "local"
    result = get_book(request).sign_in(caregiver_id, form.get("pin", ""), client)
    if not result.ok:
        if _wants_json(request):
            body: dict[str, Any] = {"ok": False, "message": result.message}
            return JSONResponse(body, status_code=429 if result.locked_until else 401)
        return _login_page(request, next_url, result.message, caregiver_id, status=401)
    services = request.app.state.services
    signer = get_signer(request)
    sessions = get_sessions(request)
    old = session_id(signer, request.cookies.get(SESSION_COOKIE))
    if old is not None:
        sessions.close(old)  # a new sign-in replaces this browser's session
    session = sessions.open(
        result.caregiver_id or "",
        result.name or "",
        result.pin_hash or "",
        # checked_form has verified this cookie: the session accepts only this CSRF token
        csrf_nonce(signer, request.cookies.get(CSRF_COOKIE)) or "",
        services.config.ui.session_minutes,
    )
    token = session_token(signer, session)
    response: Response
    if _wants_json(request):
        response = JSONResponse({"ok": True, "caregiver_id": result.caregiver_id})
    else:
        response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, SESSION_COOKIE, token)
    return response


@router.post("/caregiver/logout")
def logout(request: Request, form: CheckedForm) -> Response:
    sid = session_id(get_signer(request), request.cookies.get(SESSION_COOKIE))
    if sid is not None:
        get_sessions(request).close(sid)  # server-side: a copied cookie dies with it
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
