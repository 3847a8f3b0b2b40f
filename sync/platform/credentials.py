"""Secrets the platform hands out (device tokens, operator tokens, enrolment codes) and how it
keeps them: shown once, stored as SHA-256 only.

SHA-256 without salt is enough because every secret here is random: 256 bits for tokens, about
59 bits for a typed enrolment code, which is also single use and expires within 7 days (online
guessing at 1,000 requests/s for 7 days covers 1 in 10^9 of the space); a human-chosen
password (the console's login, issue 14) must use scrypt instead.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from pathlib import Path

# Crockford-style alphabet without 0/O, 1/I/L, U: a technician types it from a phone message.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 3
CODE_GROUP_LEN = 4
MAX_SECRET_LEN = 256


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_enrolment_code() -> str:
    """Like "K7PM-2QXR-9FHT": 12 characters, about 59 bits."""
    chars = [secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LEN)]
    groups = ["".join(chars[i : i + CODE_GROUP_LEN]) for i in range(0, len(chars), CODE_GROUP_LEN)]
    return "-".join(groups)


def normalise_code(text: str) -> str:
    """What was typed, as issued: upper case, dashes and spaces ignored, then regrouped."""
    raw = "".join(ch for ch in text.upper() if ch not in "- ")
    return "-".join(raw[i : i + CODE_GROUP_LEN] for i in range(0, len(raw), CODE_GROUP_LEN))


def code_digest(code: str) -> str:
    return token_digest("enrolment-code\n" + normalise_code(code))


def is_printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


class SecretSourceError(ValueError):
    """A secret could not be read from where the user said it was."""


def read_secret(source: str) -> str:
    """A secret from a file path, or from stdin when `source` is "-" (never from argv).

    The first line, stripped; refused when empty or unreasonably long.
    """
    if source == "-":
        text = sys.stdin.readline()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretSourceError(f"cannot read the secret file {source}: {exc}") from None
        text = lines[0] if lines else ""
    secret = text.strip()
    if not secret:
        raise SecretSourceError(f"no secret in {'stdin' if source == '-' else source}")
    if len(secret) > MAX_SECRET_LEN:
        raise SecretSourceError("the secret is longer than 256 characters")
    return secret
