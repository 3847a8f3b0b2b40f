"""County administration: credentials, meal points, enrolment codes, and the auditor's views
(alerts with evidence, the audit trail, a device's records and ledgers, completeness).

The administrator creates operators and meal points and sees everything; a township operator
sees and acts on the meal points of their township only (others answer 404).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.sql import Select

from sync.platform.audit import audit
from sync.platform.body import SMALL_CAP, body_schema, read_model
from sync.platform.completeness import check_device, evidence_of, sweep
from sync.platform.credentials import code_digest, new_enrolment_code, new_token, token_digest
from sync.platform.deps import (
    AdminDep,
    OperatorDep,
    Principal,
    PrincipalDep,
    StateDep,
    device_in_scope,
    point_in_scope,
    stamp,
)
from sync.platform.schemas import (
    CodeIssued,
    CodeRequest,
    CredentialIssued,
    NewCredential,
    NewPoint,
)
from sync.platform.state import PlatformState
from sync.platform.tables import (
    Alert,
    AuditEvent,
    Credential,
    Device,
    EnrolmentCode,
    MealPoint,
    Record,
    SafetyEntryRow,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["operator"])


def _township_points(who: Principal) -> Select[Any]:
    return select(MealPoint.point_id).where(MealPoint.township == who.township)


# ----------------------------------------------------------------------------- credentials


def ensure_admin(state: PlatformState, name: str, token: str) -> None:
    """Create or update the bootstrap administrator from the token given at start."""
    now = stamp(state.clock())
    with state.transaction() as session:
        cred = session.get(Credential, name)
        if cred is not None and cred.token_sha256 == token_digest(token) and cred.role == "admin":
            return
        if cred is None:
            cred = Credential(name=name, created_at=now, created_by="bootstrap")
            session.add(cred)
        cred.role, cred.township, cred.disabled_at = "admin", None, None
        cred.token_sha256 = token_digest(token)
        audit(session, state, "bootstrap", "set_admin_token", name=name)


@router.post(
    "/operators",
    response_model=CredentialIssued,
    status_code=201,
    openapi_extra=body_schema(NewCredential),
)
async def create_credential(request: Request, who: AdminDep, state: StateDep) -> CredentialIssued:
    """Create a township operator (or another administrator); the token is shown once."""
    form = await read_model(request, NewCredential, SMALL_CAP)
    if form.role == "operator" and not form.township:
        raise HTTPException(422, "an operator needs a township")
    if form.role == "admin" and form.township:
        raise HTTPException(422, "an administrator has no township")
    token = new_token()
    with state.transaction() as session:
        if session.get(Credential, form.name) is not None:
            raise HTTPException(409, f"credential {form.name} exists")
        session.add(
            Credential(
                name=form.name, role=form.role, township=form.township,
                token_sha256=token_digest(token), created_at=stamp(state.clock()),
                created_by=who.name,
            )
        )  # fmt: skip
        audit(session, state, who, "create_credential", name=form.name, role=form.role,
              township=form.township)  # fmt: skip
    return CredentialIssued(name=form.name, role=form.role, township=form.township, token=token)


@router.post("/operators/{name}/disable")
def disable_credential(name: str, who: AdminDep, state: StateDep) -> dict[str, str]:
    with state.transaction() as session:
        cred = session.get(Credential, name)
        if cred is None:
            raise HTTPException(404, f"no credential {name}")
        if cred.name == who.name:
            raise HTTPException(409, "an administrator cannot disable their own credential")
        cred.disabled_at = stamp(state.clock())
        audit(session, state, who, "disable_credential", name=name)
    return {"name": name, "status": "disabled"}


@router.get("/operators")
def list_credentials(who: AdminDep, state: StateDep) -> list[dict[str, Any]]:
    with state.sessions() as session:
        rows = session.scalars(select(Credential).order_by(Credential.name)).all()
    return [
        {
            "name": c.name, "role": c.role, "township": c.township,
            "created_at": c.created_at, "created_by": c.created_by, "disabled_at": c.disabled_at,
        }
        for c in rows
    ]  # fmt: skip


@router.get("/me")
def whoami(who: PrincipalDep) -> dict[str, str | None]:
    """Who this token belongs to (the console shows it and scopes its pages by it)."""
    return {"name": who.name, "role": who.role, "township": who.township}


# ----------------------------------------------------------------------------- meal points


@router.post("/points", status_code=201, openapi_extra=body_schema(NewPoint))
async def create_point(request: Request, who: AdminDep, state: StateDep) -> dict[str, str]:
    form = await read_model(request, NewPoint, SMALL_CAP)
    with state.transaction() as session:
        existing = session.get(MealPoint, form.point_id)
        if existing is not None:
            if existing.township != form.township:
                raise HTTPException(
                    409, f"meal point {form.point_id} is in township {existing.township}"
                )
            return {"point_id": form.point_id, "township": form.township}
        session.add(
            MealPoint(
                point_id=form.point_id, township=form.township, name=form.name,
                timezone=form.timezone, created_at=stamp(state.clock()), created_by=who.name,
            )
        )  # fmt: skip
        audit(session, state, who, "create_point", point_id=form.point_id,
              township=form.township, name=form.name)  # fmt: skip
    return {"point_id": form.point_id, "township": form.township}


@router.get("/points")
def list_points(who: PrincipalDep, state: StateDep) -> list[dict[str, Any]]:
    query = select(MealPoint).order_by(MealPoint.point_id)
    if not who.is_admin:
        query = query.where(MealPoint.township == who.township)
    with state.sessions() as session:
        rows = session.scalars(query).all()
    return [
        {"point_id": p.point_id, "township": p.township, "name": p.name, "timezone": p.timezone}
        for p in rows
    ]


@router.post(
    "/points/{point_id}/enrolment-codes",
    response_model=CodeIssued,
    status_code=201,
    openapi_extra=body_schema(CodeRequest),
)
async def issue_code(
    request: Request, point_id: str, who: OperatorDep, state: StateDep
) -> CodeIssued:
    """A one-time enrolment code for a new terminal at this point (shown once)."""
    form = await read_model(request, CodeRequest, SMALL_CAP)
    point_in_scope(state, who, point_id)
    now = state.clock()
    code = new_enrolment_code()
    expires = now + min(dt.timedelta(hours=form.ttl_hours), state.limits.code_max_ttl)
    with state.transaction() as session:
        session.add(
            EnrolmentCode(
                code_sha256=code_digest(code), point_id=point_id, device_id=None,
                issued_by=who.name, issued_at=stamp(now), expires_at=stamp(expires),
            )
        )  # fmt: skip
        audit(session, state, who, "issue_code", point_id=point_id, expires_at=expires)
    return CodeIssued(code=code, point_id=point_id, expires_at=expires)


# ----------------------------------------------------------------------------- auditor's views


@router.get("/devices")
def list_devices(who: PrincipalDep, state: StateDep) -> list[dict[str, Any]]:
    query = select(Device).order_by(Device.device_id)
    if not who.is_admin:
        query = query.where(Device.point_id.in_(_township_points(who)))
    with state.sessions() as session:
        rows = session.scalars(query).all()
    return [
        {
            "device_id": d.device_id, "point_id": d.point_id, "status": d.status,
            "registered_at": d.registered_at, "first_seen_at": d.first_seen_at,
            "public_key": d.public_key,
        }
        for d in rows
    ]  # fmt: skip


@router.get("/alerts")
def alerts(
    who: PrincipalDep,
    state: StateDep,
    device_id: str | None = None,
    point_id: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Alerts with their evidence, oldest first, within the caller's scope."""
    query = select(Alert).order_by(Alert.id).limit(limit)
    if device_id:
        query = query.where(Alert.device_id == device_id)
    if point_id:
        query = query.where(Alert.point_id == point_id)
    if kind:
        query = query.where(Alert.kind == kind)
    if not who.is_admin:
        query = query.where(Alert.point_id.in_(_township_points(who)))
    with state.sessions() as session:
        rows = session.scalars(query).all()
    return [
        {
            "id": a.id, "device_id": a.device_id, "point_id": a.point_id, "at": a.at,
            "kind": a.kind, "seq": a.seq, "record_id": a.record_id, "detail": a.detail,
            "evidence": evidence_of(a),
        }
        for a in rows
    ]  # fmt: skip


@router.get("/audit")
def audit_trail(
    who: PrincipalDep,
    state: StateDep,
    point_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    query = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if point_id:
        query = query.where(AuditEvent.point_id == point_id)
    if not who.is_admin:
        query = query.where(AuditEvent.point_id.in_(_township_points(who)))
    with state.sessions() as session:
        rows = session.scalars(query).all()
    return [
        {
            "id": e.id, "at": e.at, "actor": e.actor, "role": e.role, "action": e.action,
            "point_id": e.point_id, "device_id": e.device_id,
            "detail": json.loads(e.detail or "{}"),
        }
        for e in rows
    ]  # fmt: skip


@router.get("/devices/{device_id}/safety")
def device_safety(device_id: str, who: PrincipalDep, state: StateDep) -> list[dict[str, Any]]:
    """The safety ledger entries a device has sent (留样 and weekly inspections)."""
    device_in_scope(state, who, device_id)
    with state.sessions() as session:
        rows = session.scalars(
            select(SafetyEntryRow)
            .where(SafetyEntryRow.device_id == device_id)
            .order_by(SafetyEntryRow.kind, SafetyEntryRow.key)
        ).all()
        return [{"kind": r.kind, "key": r.key, **json.loads(r.body)} for r in rows]


@router.get("/devices/{device_id}/records")
def device_records(device_id: str, who: PrincipalDep, state: StateDep) -> dict[str, Any]:
    """Counts, chain and completeness of one device's stored records (auditors and tests).

    Runs the completeness check first, so a hole below a checkpoint is an alert by the time
    this answers."""
    device_in_scope(state, who, device_id)
    with state.transaction() as session:
        device = session.scalars(
            select(Device).where(Device.device_id == device_id).with_for_update()
        ).one()
        check_device(session, device, state.clock(), state.limits)
        contiguous, held = device.contiguous_seq, device.held_count
    with state.sessions() as session:
        rows = session.execute(
            select(Record.seq, Record.record_id, Record.prev_hash, Record.hash, Record.body)
            .where(Record.device_id == device_id)
            .order_by(Record.seq)
        ).all()
        open_alerts = session.scalars(select(Alert.kind).where(Alert.device_id == device_id)).all()
    broken = [
        b.seq for a, b in itertools.pairwise(rows) if b.seq == a.seq + 1 and b.prev_hash != a.hash
    ]
    return {
        "count": len(rows),
        "distinct_ids": len({r.record_id for r in rows}),
        "seqs": [r.seq for r in rows],
        "broken_links": broken,
        "contiguous_seq": contiguous,
        "held_count": held,
        "alerts": sorted(set(open_alerts)),
        # Face records by the liveness check they passed (parallax, blink, ..., off), from
        # the signed body: an auditor sees how many face check-ins had no liveness at all.
        "face_liveness": dict(
            collections.Counter(
                str(body.get("liveness"))
                for body in (json.loads(r.body) for r in rows)
                if str(body.get("method", "")).startswith("face")
            )
        ),
    }


@router.post("/verify")
async def verify_all(who: AdminDep, state: StateDep) -> dict[str, int]:
    """Run the completeness check over every device now (it also runs periodically)."""
    raised = await run_in_threadpool(sweep, state.sessions, state.clock(), state.limits)
    return {"alerts_raised": raised}
