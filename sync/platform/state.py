"""What the platform's routers share: the database, the clock, the platform key, the limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from sync.wire import b64encode


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds for records (issue 12, point 5) and completeness (point 9)."""

    # No meal record can predate the programme (smart check-in from March 2024, 三.1).
    earliest_service_date: dt.date = dt.date(2024, 1, 1)
    # A record may be dated at most this many days after the platform's today (clock skew).
    max_days_ahead: int = 1
    # Seqs below a signed checkpoint that never arrived become a "hole" alert after this long.
    hole_grace: dt.timedelta = dt.timedelta(hours=24)
    # How often the background completeness sweep runs (0: never; tests call it directly).
    verify_interval_s: float = 300.0
    # Enrolment codes: default and longest validity.
    code_ttl: dt.timedelta = dt.timedelta(hours=24)
    code_max_ttl: dt.timedelta = dt.timedelta(days=7)
    # Record signatures: "inline" checks each one on the request path (a forgery is rejected
    # in the answer); "deferred" stores records whose hash and chain check out, and the
    # background verifier (signature_check.py) checks signatures after, alerting on failures.
    signatures: str = "inline"
    # How often the deferred verifier looks for unchecked records (0: never; tests call it).
    signature_interval_s: float = 1.0


@dataclass
class PlatformState:
    sessions: sessionmaker[Session]
    platform_key: Ed25519PrivateKey
    clock: Callable[[], dt.datetime] = now_utc
    limits: Limits = field(default_factory=Limits)
    # Upload tokens already authenticated by this process: SHA-256 -> (device id, valid until
    # time.monotonic()). deps.upload_device_of; the upload itself re-checks the token and the
    # device's status on the row it locks, so this only saves a lookup.
    device_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.platform_key.public_key().public_bytes_raw())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session
