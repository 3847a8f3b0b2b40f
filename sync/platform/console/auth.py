"""Console logins: a token exchanged once for an HttpOnly session cookie, CSRF on every POST.

The cookie holds a random session id and its HMAC under a secret derived from the platform key
(so a restart keeps sessions and no extra secret file is needed); the platform stores only the
id's SHA-256, so logout ends the session server-side and a stolen database row is no cookie.
Every request re-reads the credential: a disabled operator is logged out at once. The CSRF
token is an HMAC of the session id (bound to the session); the login form's is bound to a
short-lived pre-login cookie.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request
from sqlalchemy import delete, select

from sync.platform.body import read_body
from sync.platform.credentials import is_printable_ascii, token_digest
from sync.platform.deps import Principal, StateDep, stamp
from sync.platform.state import PlatformState
from sync.platform.tables import ConsoleSession, Credential

COOKIE = "hlj_console"
PRE_COOKIE = "hlj_login"
SESSION_TTL = dt.timedelta(hours=8)
FORM_CAP = 16 * 1024


def secret_of(state: PlatformState) -> bytes:
    raw = state.platform_key.private_bytes_raw()
    return hashlib.sha256(b"haolinju-console-session-v1\n" + raw).digest()


def _mac(state: PlatformState, purpose: str, value: str) -> str:
    return hmac.new(secret_of(state), f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()


def cookie_value(state: PlatformState, sid: str) -> str:
    return f"{sid}.{_mac(state, 'cookie', sid)}"


def sid_from_cookie(state: PlatformState, value: str | None) -> str | None:
    if not value or "." not in value or len(value) > 200:
        return None
    sid, mac = value.rsplit(".", 1)
    return sid if hmac.compare_digest(mac, _mac(state, "cookie", sid)) else None


def csrf_for(state: PlatformState, sid: str) -> str:
    return _mac(state, "csrf", sid)[:40]


def login_csrf(state: PlatformState, pre: str) -> str:
    return _mac(state, "login", pre)[:40]


def new_pre_login() -> str:
    return secrets.token_urlsafe(24)


def login(state: PlatformState, token: str) -> tuple[str, Principal] | None:
    """A new session for the credential this token belongs to, or None."""
    token = token.strip()
    if not token or len(token) > 256 or not is_printable_ascii(token):
        return None
    now = state.clock()
    with state.transaction() as session:
        cred = session.scalars(
            select(Credential).where(Credential.token_sha256 == token_digest(token))
        ).first()
        if cred is None or cred.disabled_at is not None:
            return None
        sid = secrets.token_urlsafe(32)
        session.add(
            ConsoleSession(
                sid_sha256=token_digest(sid),
                name=cred.name,
                created_at=stamp(now),
                expires_at=stamp(now + SESSION_TTL),
            )
        )
        # Expired sessions go when someone logs in: no sweeper needed for a table this small.
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < stamp(now)))
        return sid, Principal(cred.name, cred.role, cred.township)


def logout(state: PlatformState, sid: str) -> None:
    with state.transaction() as session:
        session.execute(
            delete(ConsoleSession).where(ConsoleSession.sid_sha256 == token_digest(sid))
        )


class LoginRequiredError(Exception):
    """No valid console session: the page redirects to the login form."""


def _principal(state: PlatformState, sid: str) -> Principal | None:
    with state.sessions() as session:
        row = session.get(ConsoleSession, token_digest(sid))
        if row is None or row.expires_at < stamp(state.clock()):
            return None
        cred = session.get(Credential, row.name)
    if cred is None or cred.disabled_at is not None:
        return None
    return Principal(cred.name, cred.role, cred.township)


def console_user(request: Request, state: StateDep) -> Principal:
    sid = sid_from_cookie(state, request.cookies.get(COOKIE))
    who = _principal(state, sid) if sid else None
    if who is None or sid is None:
        raise LoginRequiredError()
    request.state.console_sid = sid
    return who


ConsoleUser = Annotated[Principal, Depends(console_user)]


def console_admin(who: ConsoleUser) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "只有县级管理员可以这样做")
    return who


ConsoleAdmin = Annotated[Principal, Depends(console_admin)]


async def read_form(request: Request, cap: int = FORM_CAP) -> dict[str, str]:
    """A urlencoded form (after the session was checked), capped; 400 when not UTF-8."""
    body = await read_body(request, cap)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "表单不是 UTF-8 编码") from None
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        raise HTTPException(400, "表单字段过多") from None
    return {k: v[0] for k, v in parsed.items()}


async def checked_form(
    request: Request, state: PlatformState, cap: int = FORM_CAP
) -> dict[str, str]:
    """The form of a POST by a logged-in user, its CSRF token checked (403 otherwise)."""
    form = await read_form(request, cap)
    sid: str = request.state.console_sid
    if not hmac.compare_digest(form.get("csrf", ""), csrf_for(state, sid)):
        raise HTTPException(403, "页面已过期（CSRF 校验失败），请刷新后重试")
    return form
