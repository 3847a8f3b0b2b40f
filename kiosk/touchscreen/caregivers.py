"""Caregivers and their PINs: salted scrypt hashes, rate limiting, lock after failures.

A caregiver signs in on the touchscreen by choosing her name and typing her PIN. Failed PINs
are counted in the database (they survive a restart); after `ui.pin_max_failures` in a row she
is locked for `ui.pin_lock_minutes`. An attempt is counted *before* its PIN is checked, in one
write transaction, so concurrent guesses cannot exceed the limit. Independently, one screen may
try at most `CLIENT_ATTEMPTS` PINs per minute, whoever it names, so guessing across caregivers
is slow too.
Every failure and lock is an audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.config import UiConfig
from models.db import Store
from models.tables import AuditEvent, Caregiver

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB, ~40 ms here: fine for a PIN pad
PIN_PATTERN = re.compile(r"\d{4,8}")
CLIENT_ATTEMPTS = 10  # PINs per client per CLIENT_WINDOW_S
CLIENT_WINDOW_S = 60.0
ROLES = {"caregiver": "养老护理员", "in_charge": "负责人"}


class PinError(ValueError):
    pass


def check_pin_form(pin: str) -> str:
    if not PIN_PATTERN.fullmatch(pin):
        raise PinError("PIN must be 4 to 8 digits")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise PinError("PIN too easy to guess (all one digit, or a run like 1234)")
    return pin


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


# A hash to check against when the caregiver does not exist: same time, same answer (no).
_DUMMY_HASH = hash_pin("00000000", salt=b"\0" * 16)


@dataclass(frozen=True)
class SignIn:
    ok: bool
    message: str  # Chinese, for the screen
    caregiver_id: str | None = None
    name: str | None = None
    locked_until: dt.datetime | None = None
    pin_hash: str | None = None  # on success: what the session is bound to (PIN change ends it)


class CaregiverBook:
    """The caregivers of this meal point, and PIN checks with their limits."""

    def __init__(self, store: Store, ui: UiConfig, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.ui = ui
        self.clock = clock
        self._client_attempts: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ roster of caregivers

    def add(
        self,
        name: str,
        pin: str,
        phone: str = "",
        role: str = "caregiver",
        caregiver_id: str | None = None,
    ) -> Caregiver:
        name = name.strip()
        if not name:
            raise ValueError("name is empty")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        pin_hash = hash_pin(check_pin_form(pin))
        now = self.clock()
        with self.store.write() as s:
            if caregiver_id is None:
                count = s.scalar(select(func.count()).select_from(Caregiver)) or 0
                caregiver_id = f"C{count + 1:03d}"
                while s.get(Caregiver, caregiver_id) is not None:
                    count += 1
                    caregiver_id = f"C{count + 1:03d}"
            elif s.get(Caregiver, caregiver_id) is not None:
                raise ValueError(f"caregiver {caregiver_id} exists already")
            row = Caregiver(
                caregiver_id=caregiver_id,
                name=name,
                phone=phone,
                role=role,
                pin_hash=pin_hash,
                active=True,
                failed_attempts=0,
                created_at=now,
            )
            s.add(row)
            s.add(AuditEvent(at=now, kind="caregiver_added", detail=_json(id=caregiver_id)))
        return row

    def set_pin(self, caregiver_id: str, pin: str) -> None:
        pin_hash = hash_pin(check_pin_form(pin))
        with self.store.write() as s:
            row = self._get(s, caregiver_id)
            row.pin_hash, row.failed_attempts, row.locked_until = pin_hash, 0, None
            s.add(
                AuditEvent(at=self.clock(), kind="caregiver_pin", detail=_json(id=row.caregiver_id))
            )

    def unlock(self, caregiver_id: str) -> None:
        with self.store.write() as s:
            row = self._get(s, caregiver_id)
            row.failed_attempts, row.locked_until = 0, None

    def deactivate(self, caregiver_id: str) -> None:
        with self.store.write() as s:
            self._get(s, caregiver_id).active = False

    def all(self, active_only: bool = True) -> list[Caregiver]:
        with self.store.read() as s:
            q = select(Caregiver).order_by(Caregiver.role.desc(), Caregiver.caregiver_id)
            if active_only:
                q = q.where(Caregiver.active.is_(True))
            return list(s.scalars(q))

    @staticmethod
    def _get(s: Session, caregiver_id: str) -> Caregiver:
        row = s.get(Caregiver, caregiver_id)
        if row is None:
            raise KeyError(f"no caregiver {caregiver_id}")
        return row

    # ------------------------------------------------------------------ signing in

    def _client_allowed(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._client_attempts[client]
            while q and now - q[0] > CLIENT_WINDOW_S:
                q.popleft()
            if len(q) >= CLIENT_ATTEMPTS:
                return False
            q.append(now)
            return True

    def session_state(self, caregiver_id: str) -> tuple[bool, str] | None:
        """(active, PIN hash) now, from the database: what a live session is checked against."""
        with self.store.read() as s:
            row = s.get(Caregiver, caregiver_id)
            return None if row is None else (bool(row.active), row.pin_hash)

    def sign_in(self, caregiver_id: str, pin: str, client: str = "local") -> SignIn:
        if not self._client_allowed(client):
            return SignIn(False, "尝试次数太多，请一分钟后再试")
        now = self.clock()
        claimed = self._claim(caregiver_id, now)
        if isinstance(claimed, SignIn):
            return claimed
        if claimed is None:
            verify_pin(pin, _DUMMY_HASH)
            return SignIn(False, "请先选择护理员")
        attempt, pin_hash = claimed
        good = verify_pin(pin, pin_hash)
        return self._settle(caregiver_id, client, now, attempt, pin_hash, good)

    def _claim(self, caregiver_id: str, now: dt.datetime) -> SignIn | tuple[int, str] | None:
        """Count an attempt before its PIN is checked, in one write transaction: concurrent
        guesses are serialised by the writer lock, so at most `pin_max_failures` PINs are ever
        checked before the lock, however many arrive at once (and across processes).
        (attempt number, PIN hash), a refusal, or None for no such active caregiver."""
        claimed: tuple[int, str] | None
        with self.store.write() as s:
            row = s.get(Caregiver, caregiver_id)
            if row is None or not row.active:
                claimed = None
            elif row.locked_until is not None and row.locked_until > now:
                return self._locked_message(row.locked_until, now)
            elif row.failed_attempts >= self.ui.pin_max_failures:
                # Attempts in flight (or cut short by a crash) have used up the allowance:
                # lock now, without checking this PIN.
                row.locked_until = now + dt.timedelta(minutes=self.ui.pin_lock_minutes)
                row.failed_attempts = 0
                s.add(AuditEvent(at=now, kind="pin_locked", detail=_json(id=caregiver_id)))
                return self._locked_message(row.locked_until, now)
            else:
                row.failed_attempts += 1
                claimed = (row.failed_attempts, row.pin_hash)
        return claimed

    def _settle(
        self,
        caregiver_id: str,
        client: str,
        now: dt.datetime,
        attempt: int,
        pin_hash: str,
        good: bool,
    ) -> SignIn:
        with self.store.write() as s:
            row = self._get(s, caregiver_id)
            if good and row.pin_hash == pin_hash:
                row.failed_attempts, row.locked_until = 0, None
                return SignIn(
                    True, f"{row.name}，已登录", row.caregiver_id, row.name, None, pin_hash
                )
            s.add(
                AuditEvent(
                    at=now,
                    kind="pin_failed",
                    detail=_json(id=caregiver_id, client=client, n=attempt),
                )
            )
            left = self.ui.pin_max_failures - attempt
            if left <= 0:
                row.locked_until = now + dt.timedelta(minutes=self.ui.pin_lock_minutes)
                row.failed_attempts = 0
                s.add(AuditEvent(at=now, kind="pin_locked", detail=_json(id=caregiver_id)))
                return SignIn(
                    False,
                    f"密码错误次数太多，锁定 {self.ui.pin_lock_minutes} 分钟",
                    locked_until=row.locked_until,
                )
            return SignIn(False, f"密码不对，还可以试 {left} 次")

    @staticmethod
    def _locked_message(locked_until: dt.datetime, now: dt.datetime) -> SignIn:
        return SignIn(
            False,
            f"密码错误次数太多，已锁定到 {locked_until.astimezone(now.tzinfo):%H:%M}",
            locked_until=locked_until,
        )


def _json(**fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False)
