"""Shared pieces of the caregiver's pages: templates, the caregiver session, CSRF, forms."""

from __future__ import annotations

import threading
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from kiosk import TEMPLATES_DIR
from kiosk.touchscreen.masking import mask_id_number, mask_name, mask_phone
from kiosk.touchscreen.web_auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    CaregiverSession,
    SessionBook,
    Signer,
    csrf_ok,
    load_or_create_secret,
    new_csrf_token,
    session_id,
)

TEMPLATES = Jinja2Templates(directory=TEMPLATES_DIR)
TEMPLATES.env.filters["mask_name"] = mask_name
TEMPLATES.env.filters["mask_id"] = mask_id_number
TEMPLATES.env.filters["mask_phone"] = mask_phone

_signer_lock = threading.Lock()
MAX_FORM_BYTES = 64 * 1024


def get_signer(request: Request) -> Signer:
    state = request.app.state
    with _signer_lock:
        signer = getattr(state, "signer", None)
        if signer is None:
            signer = Signer(load_or_create_secret(state.services.data_dir))
            state.signer = signer
    return signer


SignerDep = Annotated[Signer, Depends(get_signer)]


def get_sessions(request: Request) -> SessionBook:
    state = request.app.state
    with _signer_lock:
        sessions = getattr(state, "sessions", None)
        if sessions is None:
            sessions = state.sessions = SessionBook()
    return sessions


def current_caregiver(request: Request) -> CaregiverSession | None:
    """The live session named by the cookie: server-side, so logout, removal and a PIN change
    end it at once."""
    sid = session_id(get_signer(request), request.cookies.get(SESSION_COOKIE))
    if sid is None:
        return None
    from kiosk.api.routers.caregiver import get_book  # the router owns the book

    return get_sessions(request).find(sid, get_book(request).session_state)


class NeedsCaregiver(HTTPException):
    """401 for the API; pages turn it into a redirect to the PIN screen."""

    def __init__(self, next_url: str) -> None:
        super().__init__(401, "caregiver PIN required")
        self.next_url = next_url


def require_caregiver(request: Request) -> CaregiverSession:
    session = current_caregiver(request)
    if session is None:
        raise NeedsCaregiver(request.url.path)
    return session


CaregiverDep = Annotated[CaregiverSession, Depends(require_caregiver)]
OptionalCaregiverDep = Annotated[CaregiverSession | None, Depends(current_caregiver)]


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded (or JSON) body as a flat dict of strings."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    if request.headers.get("content-type", "").startswith("application/json"):
        import json

        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise HTTPException(400, "invalid JSON") from None
        except RecursionError:  # nested thousands deep: hostile, not a form
            raise HTTPException(400, "JSON nested too deeply; expected flat key/value") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "expected a JSON object")
        nested = sorted(str(k) for k, v in data.items() if isinstance(v, dict | list))
        if nested:
            raise HTTPException(400, f"expected plain values, got objects or lists: {nested[:5]}")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The form of a state-changing request, after the CSRF check (403 if it fails)."""
    form = await read_form(request)
    check_csrf(request, form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
    return form


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 unless `submitted` is this session's CSRF token (a form field or the header)."""
    session = current_caregiver(request)
    if not csrf_ok(get_signer(request), request.cookies.get(CSRF_COOKIE), submitted, session):
        raise HTTPException(403, "CSRF token missing or invalid; reload the page")


def check_csrf_header(request: Request) -> None:
    """The CSRF check of a request whose body is not a form (a photo): header only."""
    check_csrf(request, request.headers.get(CSRF_HEADER))


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page with the CSRF token (cookie set if missing) and the caregiver session."""
    signer = get_signer(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    fresh = cookie is None or signer.verify("csrf", cookie) is None
    token = new_csrf_token(signer) if fresh or cookie is None else cookie
    services = request.app.state.services
    ctx = {
        "site": services.config.site,
        "csrf": token,
        "caregiver": current_caregiver(request),
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status_code)
    if fresh:
        set_cookie(response, CSRF_COOKIE, token, httponly=False)
    response.headers["Cache-Control"] = "no-store"
    return response


def set_cookie(response: Response, name: str, value: str, httponly: bool = True) -> None:
    response.set_cookie(name, value, httponly=httponly, samesite="strict", path="/")


def login_redirect_url(next_url: str) -> str:
    return "/caregiver/login?next=" + quote(next_url, safe="/")
