"""Caregiver sessions and CSRF tokens for the local web page.

Sessions are held server-side (`SessionBook`); the HttpOnly, SameSite=Strict cookie carries only
a signed random session id, so logout, `kiosk caregiver remove` and a PIN change end a session
at once. The signing key is 32 random bytes in `<data-dir>/web-secret` (mode 0600), made on
first use. Every state-changing request also carries a CSRF token (double submit: the form
field or `X-CSRF-Token` header must equal the signed cookie), and once signed in, the token must
be the one the session was opened with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.secret_files import create_private_file, read_private_file

SECRET_FILE = "web-secret"
SESSION_COOKIE = "kiosk_session"
CSRF_COOKIE = "kiosk_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing key; made on first use. Raises SecretFileError when the file is a symlink or
    readable by others (never read or written through a link)."""
    path = data_dir / SECRET_FILE
    try:
        key = read_private_file(path)
    except FileNotFoundError:
        key = b""
    if len(key) >= 32:
        return key
    key = secrets.token_bytes(32)  # absent or truncated: a new key (signs everyone out)
    create_private_file(path, key)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, body: str) -> str:
        msg = f"{purpose}\n{body}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest()[:20])

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        if not token or not token.isascii() or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        exp = payload.get("exp")
        if exp is not None and time.time() > exp:
            return None
        return payload


@dataclass(frozen=True)
class CaregiverSession:
    caregiver_id: str
    name: str
    expires: float
    sid: str = ""
    csrf_nonce: str = ""  # the CSRF token this session was opened with; only it is accepted


def pin_fingerprint(pin_hash: str) -> str:
    """Changes whenever the PIN changes: a session opened under the old PIN stops working."""
    return hashlib.sha256(pin_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Entry:
    session: CaregiverSession
    pin_fp: str


class SessionBook:
    """Server-side caregiver sessions: the cookie only names one (signed, random id).

    A session ends when it expires, at logout, when the caregiver is removed or her PIN
    changes (checked against the database on every request, so `kiosk caregiver remove` and
    `set-pin` from the shell take effect at once), and when the daemon restarts (they live in
    its memory: failing closed costs a caregiver one PIN entry).
    """

    MAX_SESSIONS = 64  # one touchscreen; a flood of logins must not grow memory

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def open(
        self, caregiver_id: str, name: str, pin_hash: str, csrf_nonce: str, minutes: int
    ) -> CaregiverSession:
        now = self._clock()
        session = CaregiverSession(
            caregiver_id, name, now + minutes * 60, secrets.token_urlsafe(24), csrf_nonce
        )
        with self._lock:
            self._drop_expired(now)
            while len(self._sessions) >= self.MAX_SESSIONS:  # oldest first
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session.sid] = _Entry(session, pin_fingerprint(pin_hash))
        return session

    def close(self, sid: str) -> bool:
        with self._lock:
            return self._sessions.pop(sid, None) is not None

    def close_caregiver(self, caregiver_id: str) -> int:
        with self._lock:
            gone = [k for k, e in self._sessions.items() if e.session.caregiver_id == caregiver_id]
            for k in gone:
                del self._sessions[k]
        return len(gone)

    def find(
        self, sid: str, current: Callable[[str], tuple[bool, str] | None]
    ) -> CaregiverSession | None:
        """The live session `sid`, if its caregiver is still active with the same PIN.

        `current(caregiver_id)` reads (active, pin_hash) from the database, None if gone."""
        with self._lock:
            entry = self._sessions.get(sid)
            if entry is not None and entry.session.expires < self._clock():
                del self._sessions[sid]
                entry = None
        if entry is None:
            return None
        row = current(entry.session.caregiver_id)
        if row is None or not row[0] or pin_fingerprint(row[1]) != entry.pin_fp:
            self.close(sid)  # removed, or PIN changed: this session is over for good
            return None
        return entry.session

    def _drop_expired(self, now: float) -> None:
        for k in [k for k, e in self._sessions.items() if e.session.expires < now]:
            del self._sessions[k]


def session_token(signer: Signer, session: CaregiverSession) -> str:
    return signer.sign("session", {"sid": session.sid, "exp": session.expires})


def session_id(signer: Signer, token: str | None) -> str | None:
    payload = signer.verify("session", token)
    if payload is None or not isinstance(payload.get("sid"), str):
        return None
    return str(payload["sid"])


def new_csrf_token(signer: Signer) -> str:
    return signer.sign("csrf", {"n": secrets.token_hex(12)})


def csrf_nonce(signer: Signer, token: str | None) -> str | None:
    payload = signer.verify("csrf", token)
    if payload is None or not isinstance(payload.get("n"), str):
        return None
    return str(payload["n"])


def _same(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str with a TypeError (a 500): compare bytes instead.
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def csrf_ok(
    signer: Signer,
    cookie: str | None,
    submitted: str | None,
    session: CaregiverSession | None = None,
) -> bool:
    """Double submit (form field or header equals the signed cookie) and, once a caregiver is
    signed in, the token must be the one her session was opened with: a token taken from
    another browser does not go with this session."""
    if not cookie or not submitted or not _same(cookie, submitted):
        return False
    nonce = csrf_nonce(signer, cookie)
    if nonce is None:
        return False
    return session is None or _same(nonce, session.csrf_nonce)
