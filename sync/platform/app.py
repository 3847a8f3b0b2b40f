"""The reference county platform: a FastAPI app over SQLite or PostgreSQL.

It is the other end of sync/wire.py and the yardstick the kiosk is tested against; a vendor
building the real platform implements the same endpoints (see /docs, and docs/sync.md).
Devices authenticate with a bearer token issued at registration; operator endpoints
(/v1/devices, /v1/admin/*) with the admin token given at start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine
from sync.platform.ingest import BatchIngest, store_checkpoint
from sync.platform.tables import (
    Alert,
    Device,
    HeartbeatRow,
    PlatformBase,
    Record,
    RosterEntry,
    RosterVersion,
    SafetyEntryRow,
)
from sync.wire import (
    BatchResult,
    Checkpoint,
    CheckpointResult,
    DayCount,
    DaySeqs,
    DeviceRegistered,
    DeviceRegistration,
    Heartbeat,
    HeartbeatAck,
    ReconcileReport,
    RecordBatch,
    RosterElder,
    RosterPayload,
    RosterPublish,
    RosterPublished,
    SignedRoster,
    b64encode,
    public_key_from_b64,
    roster_message,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024  # compressed, as sent
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # after gzip: a 5000-record batch is ~3 MB
INGEST_ATTEMPTS = 3
M = TypeVar("M", bound=BaseModel)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_platform_engine(database_url: str) -> Engine:
    # One writer at a time on SQLite, decided at BEGIN; a longer busy timeout than the kiosk's
    # because a county's kiosks upload at once. PostgreSQL gets the pooled engine as is.
    return make_engine(
        database_url, immediate=True, pool_size=10, max_overflow=10, busy_timeout_ms=10_000
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class PlatformState:
    """What the route groups share: the database, the clock and the keys."""

    sessions: sessionmaker[Session]
    platform_key: Ed25519PrivateKey
    admin_token: str
    clock: Callable[[], dt.datetime]

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.platform_key.public_key().public_bytes_raw())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


# ----------------------------------------------------------------------------- auth


def _state(request: Request) -> PlatformState:
    return request.app.state.platform


def device_of(request: Request, authorization: Annotated[str | None, Header()] = None) -> Device:
    """The device a bearer token belongs to (401 otherwise)."""
    token = _bearer(authorization)
    with _state(request).sessions() as session:
        device = session.scalars(
            select(Device).where(Device.token_sha256 == token_digest(token))
        ).first()
    if device is None:
        raise HTTPException(401, "unknown device token")
    return device


def operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    if not hmac.compare_digest(_bearer(authorization), _state(request).admin_token):
        raise HTTPException(401, "operator token required")


DeviceDep = Annotated[Device, Depends(device_of)]
OperatorDep = Annotated[None, Depends(operator)]


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 with what was wrong. FastAPI's own handler echoes the raw body back and answers 500
    when that body is not UTF-8 (found by tests/faults/test_fuzz.py)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    """A database too busy to answer in time (SQLite's single writer under a county's worth of
    kiosks) is a 503 the uploader backs off from, not a 500 it treats as a bug."""
    log.warning("database busy, answering 503: %s", getattr(exc, "orig", exc))
    return JSONResponse(
        {"detail": "busy, retry later"}, status_code=503, headers={"Retry-After": "5"}
    )


def create_platform_app(
    database_url: str,
    platform_key: Ed25519PrivateKey,
    admin_token: str,
    *,
    clock: Callable[[], dt.datetime] = now_utc,
) -> FastAPI:
    """The platform app; creates its tables if missing (the reference server has no migrations)."""
    engine = make_platform_engine(database_url)
    PlatformBase.metadata.create_all(engine)
    state = PlatformState(
        sessions=sessionmaker(engine, expire_on_commit=False),
        platform_key=platform_key,
        admin_token=admin_token,
        clock=clock,
    )
    app = FastAPI(
        title="Haolinju reference county platform",
        version="1",
        description="Receives, verifies and counts meal records; serves signed rosters.",
    )
    app.state.engine = engine
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OperationalError, _database_busy)

    app.state.platform = state
    _record_routes(app, state)
    _roster_routes(app, state)
    _operator_routes(app, state)
    return app


def _record_routes(app: FastAPI, state: PlatformState) -> None:
    """Device endpoints: records, checkpoints, reconciliation, heartbeat."""
    clock = state.clock

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "server_time": clock().isoformat(),
            "public_key": state.public_key_b64,
        }

    @app.post(
        "/v1/records",
        response_model=BatchResult,
        openapi_extra=_body_schema(RecordBatch, gzip=True),
    )
    async def upload_records(request: Request, device: DeviceDep) -> BatchResult:
        batch = _parse(RecordBatch, await _read_body(request))
        if batch.device_id != device.device_id:
            raise HTTPException(403, "batch names another device")
        return await run_in_threadpool(_ingest, state, device.device_id, batch)

    @app.post("/v1/checkpoints", response_model=CheckpointResult)
    def checkpoint(cp: Checkpoint, device: DeviceDep) -> CheckpointResult:
        with state.transaction() as session:
            locked = session.scalars(
                select(Device).where(Device.device_id == device.device_id).with_for_update()
            ).one()
            result = store_checkpoint(session, locked, cp, clock())
        if result is None:
            raise HTTPException(400, "checkpoint signature does not verify")
        return result

    @app.get("/v1/reconcile", response_model=ReconcileReport)
    def reconcile(
        device: DeviceDep,
        date_from: Annotated[dt.date, Query(alias="from")],
        date_to: Annotated[dt.date, Query(alias="to")],
    ) -> ReconcileReport:
        dev = device.device_id
        with state.sessions() as session:
            rows = session.execute(
                select(Record.service_date, func.count(), func.max(Record.seq))
                .where(
                    Record.device_id == dev,
                    Record.service_date >= date_from,
                    Record.service_date <= date_to,
                )
                .group_by(Record.service_date)
                .order_by(Record.service_date)
            ).all()
            heads = dict(
                session.execute(
                    select(Record.seq, Record.hash).where(
                        Record.device_id == dev, Record.seq.in_([r[2] for r in rows])
                    )
                ).all()
            )
        days = [
            DayCount(service_date=day, count=count, head_seq=head, head_hash=heads.get(head))
            for day, count, head in rows
        ]
        return ReconcileReport(device_id=dev, days=days, server_time=clock())

    @app.get("/v1/reconcile/{service_date}/seqs", response_model=DaySeqs)
    def day_seqs(device: DeviceDep, service_date: dt.date) -> DaySeqs:
        with state.sessions() as session:
            seqs = session.scalars(
                select(Record.seq)
                .where(Record.device_id == device.device_id, Record.service_date == service_date)
                .order_by(Record.seq)
            ).all()
        return DaySeqs(service_date=service_date, seqs=list(seqs))

    @app.post("/v1/heartbeat", response_model=HeartbeatAck)
    def heartbeat(hb: Heartbeat, device: DeviceDep) -> HeartbeatAck:
        if hb.device_id != device.device_id:
            raise HTTPException(403, "heartbeat names another device")
        now = clock()
        with state.transaction() as session:
            row = session.get(HeartbeatRow, device.device_id)
            if row is None:
                row = HeartbeatRow(device_id=device.device_id)
                session.add(row)
            row.received_at = now.isoformat()
            row.body = hb.model_dump_json()
            if hb.safety is not None:
                _store_safety(session, device.device_id, hb, now)
        return HeartbeatAck(server_time=now)


def _ingest(state: PlatformState, device_id: str, batch: RecordBatch) -> BatchResult:
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with state.transaction() as session:
                locked = session.scalars(
                    select(Device).where(Device.device_id == device_id).with_for_update()
                ).one()
                result = BatchIngest(session, locked, state.clock()).run(batch)
            log.info(
                "device %s: %d accepted, %d duplicate, %d rejected",
                device_id,
                len(result.accepted),
                len(result.duplicate),
                len(result.rejected),
            )
            return result
        except (IntegrityError, OperationalError) as exc:
            # A concurrent copy of the same batch (resend while the first is in flight) won
            # the race; a retry sees its rows as duplicates.
            log.warning("ingest attempt %d for %s failed: %s", attempt, device_id, exc.orig)
    raise HTTPException(503, "busy, retry later", headers={"Retry-After": "5"})


def _roster_routes(app: FastAPI, state: PlatformState) -> None:
    """Roster serving (signed, incremental by version) and publishing."""

    @app.get("/v1/roster", response_model=SignedRoster, responses={304: {}})
    def roster(
        device: DeviceDep,
        since: Annotated[int, Query(ge=0)] = 0,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        with state.sessions() as session:
            current = session.get(RosterVersion, device.point_id)
            version = current.version if current else 0
            etag = f'"{version}"'
            if version <= since or (if_none_match and if_none_match.strip() == etag):
                return Response(status_code=304, headers={"ETag": etag})
            entries = session.scalars(
                select(RosterEntry)
                .where(RosterEntry.point_id == device.point_id, RosterEntry.version > since)
                .order_by(RosterEntry.elder_id)
            ).all()
            elders = [_roster_elder(e) for e in entries]
        payload = RosterPayload(
            point_id=device.point_id,
            version=version,
            since=since,
            issued_at=state.clock(),
            elders=elders,
        ).model_dump_json()
        signature = b64encode(state.platform_key.sign(roster_message(payload)))
        body = SignedRoster(payload=payload, signature=signature).model_dump_json()
        return Response(body, media_type="application/json", headers={"ETag": etag})

    @app.post("/v1/admin/roster", response_model=RosterPublished)
    def publish_roster(pub: RosterPublish, _: OperatorDep) -> RosterPublished:
        with state.transaction() as session:
            current = session.get(RosterVersion, pub.point_id, with_for_update=True)
            if current is None:
                current = RosterVersion(point_id=pub.point_id, version=0)
                session.add(current)
            current.version += 1
            for elder in pub.elders:
                row = session.get(RosterEntry, (pub.point_id, elder.elder_id))
                if row is None:
                    row = RosterEntry(point_id=pub.point_id, elder_id=elder.elder_id)
                    session.add(row)
                row.name = elder.name
                row.id_number_masked = elder.id_number_masked
                row.card_uid = elder.card_uid
                row.group_name = elder.group
                row.contact_phone = elder.contact_phone
                row.status = elder.status
                row.agreement_signed = elder.agreement_signed
                row.version = current.version
            version = current.version
        log.info("roster of %s now at version %d", pub.point_id, version)
        return RosterPublished(point_id=pub.point_id, version=version)


def _operator_routes(app: FastAPI, state: PlatformState) -> None:
    """Provisioning and audit endpoints for the platform operator."""

    @app.post("/v1/devices", response_model=DeviceRegistered, status_code=201)
    def register(reg: DeviceRegistration, _: OperatorDep) -> DeviceRegistered:
        try:
            public_key_from_b64(reg.public_key)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        token = secrets.token_urlsafe(32)
        try:
            with state.transaction() as session:
                if session.get(Device, reg.device_id) is not None:
                    raise HTTPException(409, f"device {reg.device_id} is already registered")
                session.add(
                    Device(
                        device_id=reg.device_id,
                        point_id=reg.point_id,
                        token_sha256=token_digest(token),
                        public_key=reg.public_key,
                        registered_at=state.clock().isoformat(),
                    )
                )
        except IntegrityError:
            raise HTTPException(409, f"device {reg.device_id} is already registered") from None
        log.info("registered device %s at point %s", reg.device_id, reg.point_id)
        return DeviceRegistered(device_id=reg.device_id, token=token)

    @app.get("/v1/admin/alerts")
    def alerts(_: OperatorDep, device_id: str | None = None) -> list[dict[str, Any]]:
        with state.sessions() as session:
            query = select(Alert).order_by(Alert.id)
            if device_id:
                query = query.where(Alert.device_id == device_id)
            return [
                {
                    "device_id": a.device_id,
                    "at": a.at,
                    "kind": a.kind,
                    "seq": a.seq,
                    "record_id": a.record_id,
                    "detail": a.detail,
                }
                for a in session.scalars(query)
            ]

    @app.get("/v1/admin/devices/{device_id}/safety")
    def device_safety(_: OperatorDep, device_id: str) -> list[dict[str, Any]]:
        """The safety ledger entries a device has sent (留样 and weekly inspections)."""
        with state.sessions() as session:
            rows = session.scalars(
                select(SafetyEntryRow)
                .where(SafetyEntryRow.device_id == device_id)
                .order_by(SafetyEntryRow.kind, SafetyEntryRow.key)
            ).all()
            return [{"kind": r.kind, "key": r.key, **json.loads(r.body)} for r in rows]

    @app.get("/v1/admin/devices/{device_id}/records")
    def device_records(_: OperatorDep, device_id: str) -> dict[str, Any]:
        """Counts and chain check of one device's stored records (for auditors and tests)."""
        with state.sessions() as session:
            rows = session.execute(
                select(Record.seq, Record.record_id, Record.prev_hash, Record.hash)
                .where(Record.device_id == device_id)
                .order_by(Record.seq)
            ).all()
        broken = [
            b.seq
            for a, b in itertools.pairwise(rows)
            if b.seq == a.seq + 1 and b.prev_hash != a.hash
        ]
        return {
            "count": len(rows),
            "distinct_ids": len({r.record_id for r in rows}),
            "seqs": [r.seq for r in rows],
            "broken_links": broken,
        }


def _store_safety(session: Session, device_id: str, hb: Heartbeat, now: dt.datetime) -> None:
    """Upsert the ledger entries of a heartbeat by their key (re-sent entries replace)."""
    assert hb.safety is not None
    entries: list[tuple[str, str, BaseModel]] = [
        ("food_sample", f"{e.service_date.isoformat()}/{e.slot}", e) for e in hb.safety.food_samples
    ]
    entries += [("inspection", e.week_start.isoformat(), e) for e in hb.safety.inspections]
    for kind, key, entry in entries:
        row = session.get(SafetyEntryRow, (device_id, kind, key))
        if row is None:
            row = SafetyEntryRow(device_id=device_id, kind=kind, key=key)
            session.add(row)
        row.received_at = now.isoformat()
        row.body = entry.model_dump_json()


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    return authorization[7:].strip()


async def _read_body(request: Request) -> bytes:
    """The request body, gunzipped if sent compressed, with hard size limits (gzip bombs)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, "body too large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise HTTPException(413, "body too large")
    if request.headers.get("content-encoding", "").lower() != "gzip":
        return bytes(raw)
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(bytes(raw), MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise HTTPException(400, f"bad gzip body: {exc}") from None
    if inflater.unconsumed_tail:
        raise HTTPException(413, "body too large once inflated")
    if not inflater.eof:
        raise HTTPException(400, "truncated gzip body")
    return body


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise HTTPException(422, json.loads(json.dumps(errors, default=str))) from None


def _body_schema(model: type[BaseModel], *, gzip: bool) -> dict[str, Any]:
    description = "JSON body" + (", optionally gzip (Content-Encoding: gzip)" if gzip else "")
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _roster_elder(e: RosterEntry) -> RosterElder:
    return RosterElder(
        elder_id=e.elder_id,
        name=e.name,
        id_number_masked=e.id_number_masked,
        card_uid=e.card_uid,
        group=e.group_name,
        contact_phone=e.contact_phone,
        status=e.status,  # type: ignore[arg-type]
        agreement_signed=e.agreement_signed,
    )
