"""Terminal enrolment with a one-time code, and retiring or re-keying a terminal.

POST /v1/devices is authenticated by an enrolment code (`Authorization: Bearer <code>`) that a
township operator issued for one meal point: it expires, works once, and only for that point.
A retry after a lost answer (same code, same key, same point, the device has not used its token
yet, and the request proves possession of the key) gets a fresh token: the lost one is void.
A re-key code names one device: enrolling with it replaces that device's key and token, and the
old key keeps verifying the records it signed (seqs up to the re-key).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sync.platform.audit import audit
from sync.platform.body import SMALL_CAP, body_schema, read_model
from sync.platform.credentials import code_digest, new_enrolment_code, new_token, token_digest
from sync.platform.deps import (
    OperatorDep,
    Principal,
    PrincipalDep,
    StateDep,
    bearer,
    device_in_scope,
    stamp,
)
from sync.platform.schemas import CodeIssued, RetireRequest
from sync.platform.state import PlatformState
from sync.platform.tables import CheckpointRow, Device, DeviceKeyRow, EnrolmentCode, Record
from sync.wire import (
    DeviceRegistered,
    DeviceRegistration,
    b64decode,
    enrolment_message,
    public_key_from_b64,
)

log = logging.getLogger(__name__)
router = APIRouter()


@router.post(
    "/v1/devices",
    response_model=DeviceRegistered,
    status_code=201,
    openapi_extra=body_schema(DeviceRegistration),
    tags=["device"],
)
async def register(
    request: Request,
    state: StateDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_proof: Annotated[str | None, Header()] = None,
) -> DeviceRegistered:
    """Enrol a terminal: `Authorization: Bearer <one-time enrolment code>`."""
    code = bearer(authorization)
    # Authenticate before reading the body: an unknown code is refused unread.
    with state.sessions() as session:
        if session.get(EnrolmentCode, code_digest(code)) is None:
            raise HTTPException(401, "unknown enrolment code")
    reg = await read_model(request, DeviceRegistration, SMALL_CAP)
    try:
        key = public_key_from_b64(reg.public_key)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    proof_ok = False
    if x_device_proof:
        try:
            key.verify(
                b64decode(x_device_proof), enrolment_message(reg.device_id, reg.point_id, code)
            )
            proof_ok = True
        except Exception:  # any malformed or wrong proof is simply no proof
            proof_ok = False
    try:
        return await run_in_threadpool(_register, state, code, reg, proof_ok)
    except IntegrityError:
        raise HTTPException(409, f"device {reg.device_id} is already registered") from None


def _register(
    state: PlatformState, code: str, reg: DeviceRegistration, proof_ok: bool
) -> DeviceRegistered:
    now = state.clock()
    token = new_token()
    digest = code_digest(code)
    with state.transaction() as session:
        row = session.get(EnrolmentCode, digest, with_for_update=True)
        if row is None:
            raise HTTPException(401, "unknown enrolment code")
        if row.point_id != reg.point_id:
            raise HTTPException(
                403, f"this enrolment code is for meal point {row.point_id}, not {reg.point_id}"
            )
        device = session.get(Device, reg.device_id, with_for_update=True)
        if row.used_at is not None:
            return _retry(session, state, row, device, reg, token, proof_ok)
        if dt.datetime.fromisoformat(row.expires_at) <= now:
            raise HTTPException(401, "this enrolment code has expired; ask for a new one")
        if row.device_id is not None:
            _rekey(session, state, row, device, reg, token)
        else:
            if device is not None:
                raise HTTPException(409, f"device {reg.device_id} is already registered")
            session.add(
                Device(
                    device_id=reg.device_id,
                    point_id=reg.point_id,
                    token_sha256=token_digest(token),
                    public_key=reg.public_key,
                    registered_at=now.isoformat(),
                    status="active",
                    enrolled_with=digest,
                    contiguous_seq=0,
                    held_count=0,
                )
            )
            session.flush()
            session.add(
                DeviceKeyRow(
                    device_id=reg.device_id, public_key=reg.public_key, from_seq=1,
                    until_seq=None, added_at=stamp(now),
                )
            )  # fmt: skip
            audit(
                session, state, f"device:{reg.device_id}", "enrol", point_id=reg.point_id,
                device_id=reg.device_id, code_issued_by=row.issued_by, public_key=reg.public_key,
            )  # fmt: skip
        row.used_at = stamp(now)
        row.used_by_device = reg.device_id
    log.info("enrolled device %s at point %s", reg.device_id, reg.point_id)
    return DeviceRegistered(device_id=reg.device_id, token=token)


def _retry(
    session: Session,
    state: PlatformState,
    row: EnrolmentCode,
    device: Device | None,
    reg: DeviceRegistration,
    token: str,
    proof_ok: bool,
) -> DeviceRegistered:
    """The same enrolment again after a lost answer: a fresh token, or a refusal saying why."""
    same = (
        device is not None
        and row.used_by_device == reg.device_id
        and device.enrolled_with == row.code_sha256
        and device.public_key == reg.public_key
        and device.point_id == reg.point_id
        and device.status == "active"
    )
    if not same:
        raise HTTPException(409, "this enrolment code has already been used")
    assert device is not None
    if device.first_seen_at is not None:
        raise HTTPException(
            409, f"device {reg.device_id} is enrolled and in use; ask for a re-key code"
        )
    if not proof_ok:
        raise HTTPException(401, "a repeated enrolment must prove the key (X-Device-Proof header)")
    device.token_sha256 = token_digest(token)
    audit(
        session, state, f"device:{reg.device_id}", "enrol_retry", point_id=reg.point_id,
        device_id=reg.device_id,
    )  # fmt: skip
    log.info("enrolment of %s repeated (lost answer): new token issued", reg.device_id)
    return DeviceRegistered(device_id=reg.device_id, token=token)


def _rekey(
    session: Session,
    state: PlatformState,
    row: EnrolmentCode,
    device: Device | None,
    reg: DeviceRegistration,
    token: str,
) -> None:
    if device is None or device.device_id != row.device_id:
        raise HTTPException(403, f"this re-key code is for device {row.device_id}")
    if device.status == "retired":
        raise HTTPException(409, f"device {device.device_id} was retired after this code")
    now = state.clock()
    device.public_key = reg.public_key
    device.token_sha256 = token_digest(token)
    device.status = "active"
    device.enrolled_with = row.code_sha256
    device.first_seen_at = None
    # The old key was closed at the re-key (until_seq = the platform's evidence of the head).
    last = session.scalar(
        select(func.max(DeviceKeyRow.until_seq)).where(DeviceKeyRow.device_id == device.device_id)
    )
    start = (last or 0) + 1
    session.add(
        DeviceKeyRow(
            device_id=device.device_id, public_key=reg.public_key, from_seq=start,
            until_seq=None, added_at=stamp(now),
        )
    )  # fmt: skip
    audit(
        session, state, f"device:{device.device_id}", "rekey_enrol", point_id=device.point_id,
        device_id=device.device_id, from_seq=start, public_key=reg.public_key,
    )  # fmt: skip


def _held_head(session: Session, device_id: str) -> int:
    """The highest seq the platform has evidence of: a stored record or a signed checkpoint."""
    top_record = session.scalar(select(func.max(Record.seq)).where(Record.device_id == device_id))
    top_cp = session.scalar(
        select(func.max(CheckpointRow.seq)).where(CheckpointRow.device_id == device_id)
    )
    return max(top_record or 0, top_cp or 0)


def _close_key(session: Session, device: Device, now: dt.datetime) -> int:
    """End the current key at the platform's evidence of the head (the caller sets the status
    that stops the token)."""
    head = _held_head(session, device.device_id)
    for key_row in session.scalars(
        select(DeviceKeyRow).where(
            DeviceKeyRow.device_id == device.device_id, DeviceKeyRow.until_seq.is_(None)
        )
    ):
        key_row.until_seq = max(head, key_row.from_seq - 1)
        key_row.retired_at = stamp(now)
    # The token stays on the row so that the terminal is told why it is refused ("retired",
    # "rekeying"); the status refuses it from this transaction on. A re-key's enrolment
    # replaces it.
    return head


@router.post("/v1/admin/devices/{device_id}/retire", tags=["operator"])
async def retire(
    request: Request, device_id: str, who: PrincipalDep, state: StateDep
) -> dict[str, object]:
    """Retire a terminal (administrator, or the operator of its township): its token and key
    are refused from now on; everything it sent stays."""
    form = await read_model(request, RetireRequest, SMALL_CAP)
    device_in_scope(state, who, device_id)
    now = state.clock()
    with state.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        assert device is not None
        if device.status == "retired":
            raise HTTPException(409, f"device {device_id} is already retired")
        head = _close_key(session, device, now)
        device.status = "retired"
        audit(
            session, state, who, "retire", point_id=device.point_id, device_id=device_id,
            reason=form.reason, last_seq=head,
        )  # fmt: skip
    return {"device_id": device_id, "status": "retired", "last_seq": head}


@router.post("/v1/admin/devices/{device_id}/rekey", response_model=CodeIssued, tags=["operator"])
async def rekey(request: Request, device_id: str, who: OperatorDep, state: StateDep) -> CodeIssued:
    """Re-key a terminal (operator of its township): the current key and token stop at once;
    a one-time code bound to this device lets the terminal enrol its new key."""
    form = await read_model(request, RetireRequest, SMALL_CAP)
    device_in_scope(state, who, device_id)
    return await run_in_threadpool(_issue_rekey, state, who, device_id, form.reason)


def _issue_rekey(state: PlatformState, who: Principal, device_id: str, reason: str) -> CodeIssued:
    now = state.clock()
    code = new_enrolment_code()
    expires = now + state.limits.code_ttl
    with state.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        assert device is not None
        if device.status == "retired":
            raise HTTPException(409, f"device {device_id} is retired")
        head = _close_key(session, device, now)
        device.status = "rekeying"
        session.add(
            EnrolmentCode(
                code_sha256=code_digest(code), point_id=device.point_id, device_id=device_id,
                issued_by=who.name, issued_at=stamp(now), expires_at=stamp(expires),
            )
        )  # fmt: skip
        audit(
            session, state, who, "rekey", point_id=device.point_id, device_id=device_id,
            reason=reason, old_key_until_seq=head,
        )  # fmt: skip
        point_id = device.point_id
    return CodeIssued(code=code, point_id=point_id, device_id=device_id, expires_at=expires)
