"""Caregiver sessions and CSRF tokens for the local web page: HMAC-signed cookies.

The key is 32 random bytes in `<data-dir>/web-secret` (mode 0600), made on first use, so a
restart keeps sessions valid and a copied database alone cannot forge one. Cookies are
HttpOnly (session) and SameSite=Strict; every state-changing request also carries a CSRF token
(double submit: the form field or `X-CSRF-Token` header must equal the signed cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "web-secret"
SESSION_COOKIE = "kiosk_session"
CSRF_COOKIE = "kiosk_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def load_or_create_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
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

    def sign(self, purpose: str, payload: dict) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, token: str | None) -> dict | None:
        if not token or token.count(".") != 1:
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


def session_token(signer: Signer, caregiver_id: str, name: str, minutes: int) -> str:
    exp = time.time() + minutes * 60
    return signer.sign("session", {"cid": caregiver_id, "name": name, "exp": exp})


def read_session(signer: Signer, token: str | None) -> CaregiverSession | None:
    payload = signer.verify("session", token)
    if payload is None or not isinstance(payload.get("cid"), str):
        return None
    return CaregiverSession(payload["cid"], str(payload.get("name", "")), float(payload["exp"]))


def new_csrf_token(signer: Signer) -> str:
    return signer.sign("csrf", {"n": secrets.token_hex(12)})


def csrf_ok(signer: Signer, cookie: str | None, submitted: str | None) -> bool:
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie, submitted) and signer.verify("csrf", cookie) is not None
