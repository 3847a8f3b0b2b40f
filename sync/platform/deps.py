"""Dependency aliases: who is calling (device, operator, administrator) and the shared state.

Authentication reads headers only, so it runs before any body is read (see body.py). A token
that is not printable ASCII is refused with a 401 that says so (it used to be a 500).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Annotated, NamedTuple

from fastapi import Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update

from sync.platform.credentials import is_printable_ascii, token_digest
from sync.platform.state import PlatformState
from sync.platform.tables import Credential, Device, MealPoint

ADMIN = "admin"
OPERATOR = "operator"
# How long an upload token stays memoised (upload_device_of); the memo's size bound.
TOKEN_MEMO_S = 60.0
TOKEN_MEMO_MAX = 100_000


async def get_state(request: Request) -> PlatformState:
    # async: FastAPI runs a plain function dependency on its thread pool, a thread hop per
    # request for an attribute read.
    state: PlatformState = request.app.state.platform
    return state


StateDep = Annotated[PlatformState, Depends(get_state)]


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; 401 with the reason otherwise."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise HTTPException(401, "bearer token required", headers=challenge)
    token = authorization[7:].strip()
    if not token or not is_printable_ascii(token) or len(token) > 256:
        raise HTTPException(401, "malformed bearer token (printable ASCII expected)", challenge)
    return token


@dataclass(frozen=True)
class Principal:
    """A person with a platform credential: the county administrator or a township operator."""

    name: str
    role: str
    township: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def sees_township(self, township: str) -> bool:
        return self.is_admin or self.township == township


def device_of(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> Device:
    """The active device a bearer token belongs to (401 otherwise)."""
    token = bearer(authorization)
    with state.sessions() as session:
        device = session.scalars(
            select(Device).where(Device.token_sha256 == token_digest(token))
        ).first()
    if device is None:
        raise HTTPException(401, "unknown device token")
    if device.status != "active":
        raise HTTPException(401, f"device {device.device_id} is {device.status}")
    if device.first_seen_at is None:
        # From now on a lost registration answer can no longer be "retried" (see devices.py).
        with state.transaction() as session:
            session.execute(
                update(Device)
                .where(Device.device_id == device.device_id, Device.first_seen_at.is_(None))
                .values(first_seen_at=state.clock().isoformat())
            )
    return device


class UploadAuth(NamedTuple):
    """Who sent an upload: the device and the SHA-256 of the token it used (re-checked on the
    device row the upload locks)."""

    device_id: str
    token_sha256: str


async def upload_device_of(
    state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> UploadAuth:
    """device_of for record uploads, memoised per process for TOKEN_MEMO_S.

    A 100-record batch spent ~0.7 ms of platform CPU (a pooled connection, its ping, an ORM
    query, a rollback) finding its device before the body was read: as much as storing 15
    records (docs/scale.md). A token seen in the last minute is taken from the memo instead;
    the upload then checks the token and `status` on the device row it locks (records.py), so a
    device retired or re-keyed since is refused in that transaction all the same. What the memo
    allows for at most a minute is that such a device's body is read and parsed before the 401.
    async: a memo hit needs no thread; a miss asks the database on the thread pool.
    """
    token = bearer(authorization)
    digest = token_digest(token)
    memo = state.device_tokens
    hit = memo.get(digest)
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        return UploadAuth(hit[0], digest)
    device = await run_in_threadpool(device_of, state, authorization)
    if len(memo) >= TOKEN_MEMO_MAX:
        memo.clear()
    memo[digest] = (device.device_id, now + TOKEN_MEMO_S)
    return UploadAuth(device.device_id, digest)


def principal_of(
    state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    token = bearer(authorization)
    with state.sessions() as session:
        cred = session.scalars(
            select(Credential).where(Credential.token_sha256 == token_digest(token))
        ).first()
    if cred is None or cred.disabled_at is not None:
        raise HTTPException(401, "operator or administrator token required")
    return Principal(cred.name, cred.role, cred.township)


def admin_of(who: Annotated[Principal, Depends(principal_of)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "only the county administrator may do this")
    return who


def operator_of(who: Annotated[Principal, Depends(principal_of)]) -> Principal:
    if who.role != OPERATOR:
        raise HTTPException(
            403, "only a township operator may do this (the administrator creates one)"
        )
    return who


DeviceDep = Annotated[Device, Depends(device_of)]
UploadDep = Annotated[UploadAuth, Depends(upload_device_of)]
PrincipalDep = Annotated[Principal, Depends(principal_of)]  # administrator or operator
AdminDep = Annotated[Principal, Depends(admin_of)]
OperatorDep = Annotated[Principal, Depends(operator_of)]


def point_in_scope(state: PlatformState, who: Principal, point_id: str) -> MealPoint:
    """The meal point if the caller may act on it; 404 otherwise (no enumeration)."""
    with state.sessions() as session:
        point = session.get(MealPoint, point_id)
    if point is None or not who.sees_township(point.township):
        raise HTTPException(404, f"no meal point {point_id} in your scope")
    return point


def device_in_scope(state: PlatformState, who: Principal, device_id: str) -> Device:
    with state.sessions() as session:
        device = session.get(Device, device_id)
        point = session.get(MealPoint, device.point_id) if device is not None else None
    if device is None or (not who.is_admin and (point is None or point.township != who.township)):
        raise HTTPException(404, f"no device {device_id} in your scope")
    return device


def stamp(now: dt.datetime) -> str:
    return now.isoformat(timespec="microseconds")
