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
    Signer,
    csrf_ok,
    load_or_create_secret,
    new_csrf_token,
    read_session,
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


def current_caregiver(request: Request) -> CaregiverSession | None:
    return read_session(get_signer(request), request.cookies.get(SESSION_COOKIE))


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
        if not isinstance(data, dict):
            raise HTTPException(400, "expected a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The form of a state-changing request, after the CSRF check (403 if it fails)."""
    form = await read_form(request)
    submitted = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_ok(get_signer(request), request.cookies.get(CSRF_COOKIE), submitted):
        raise HTTPException(403, "CSRF token missing or invalid; reload the page")
    return form


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page with the CSRF token (cookie set if missing) and the caregiver session."""
    signer = get_signer(request)
    token = request.cookies.get(CSRF_COOKIE)
    fresh = token is None or signer.verify("csrf", token) is None
    if fresh:
        token = new_csrf_token(signer)
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
