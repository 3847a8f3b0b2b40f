"""Dependency aliases: who is calling (device, operator, administrator) and the shared state.

Authentication reads headers only, so it runs before any body is read (see body.py). A token
that is not printable ASCII is refused with a 401 that says so (it used to be a 500).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy import select, update

from sync.platform.credentials import is_printable_ascii, token_digest
from sync.platform.state import PlatformState
from sync.platform.tables import Credential, Device, MealPoint

ADMIN = "admin"
OPERATOR = "operator"


def get_state(request: Request) -> PlatformState:
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
