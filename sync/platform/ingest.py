"""Verifying and storing a device's records and checkpoints: the platform's tamper checks.

Each record of a batch ends in exactly one of three lists:
- duplicate: the same record_id with the same content is already stored (a resend after a lost
  response) — nothing is stored twice;
- rejected (with a reason, and an alert for the auditor): content that does not match its hash
  (edited), a bad signature (forged), a record_id reused for other content, a seq already held
  by another record (fork), a prev_hash that conflicts with a stored neighbour (edited, deleted
  or inserted), or a hash that contradicts a signed checkpoint (history rewritten);
- accepted: everything else. A record whose predecessor is missing is accepted with a "gap"
  alert: the predecessor may still arrive (reconciliation), or it was deleted on the device.

The caller holds the device row locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one
writer), so checks and inserts of one device never interleave.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import operator
import zoneinfo
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring as encode_json_string  # C; what json.dumps uses
from typing import Any, NamedTuple, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, delete, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from sync.platform.state import Limits
from sync.platform.tables import (
    Alert,
    CheckpointRow,
    Device,
    DeviceKeyRow,
    MealClaim,
    MealPoint,
    PlatformBase,
    Record,
    SettlementMonth,
)
from sync.wire import (
    CHAINED_FIELDS,
    GENESIS_HASH,
    BatchResult,
    Checkpoint,
    CheckpointResult,
    RecordBatch,
    Rejection,
    WireRecord,
    canonical_bytes,
    checkpoint_message,
    public_key_from_b64,
    record_message,
    verify,
)

log = logging.getLogger(__name__)

# Seqs are stored as 32-bit integers on PostgreSQL: two billion records per device.
MAX_SEQ = 2**31 - 1
DEFAULT_ZONE = "Asia/Shanghai"
# SQLite allows 32766 bound parameters; stay well below when looking up a batch's neighbours.
IN_CHUNK = 5000
T = TypeVar("T")
RECORD_TABLE = PlatformBase.metadata.tables["record"]
CLAIM_TABLE = PlatformBase.metadata.tables["meal_claim"]
# meal_claim.kind; LATE: its month was closed (settled) before the record arrived.
CLEAN, MANUAL, FLAGGED, LATE = 0, 1, 2, 3
ClaimKey = tuple[str, str, str, dt.date]  # elder, service, slot, day


_SORTED_FIELDS = sorted(CHAINED_FIELDS)
# The fields as WireRecord types them, in canonical (sorted) order; canonical_record relies on it.
_EXPECTED_ORDER = [
    "card_uid", "caregiver_id", "checked_in_at", "device_id", "distance", "elder_id", "flags",
    "liveness", "margin", "method", "reader", "reason", "record_id", "seq", "service",
    "service_date", "slot",
]  # fmt: skip
assert _SORTED_FIELDS == _EXPECTED_ORDER, "CHAINED_FIELDS changed: update canonical_record"


def _text(value: object) -> str:
    """A str-or-None field as canonical JSON ("null" for None)."""
    if value is None:
        return "null"
    if type(value) is not str:
        raise TypeError
    return encode_json_string(value)


def _number(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is float and math.isfinite(value):
        return float.__repr__(round(value, 6))
    if type(value) is int:
        return int.__repr__(value)
    raise TypeError


def canonical_record(rec: WireRecord) -> bytes:
    """canonical_bytes(rec.chained()), byte for byte, without building the dict and running
    the general encoder (docs/scale.md: the request's CPU per record; equality tested in
    tests/sync/test_canonical_fast.py). One expression over the fields in sorted order, each
    encoded by its wire type; anything unusual (a float that is not finite, an unexpected type)
    takes the general path."""
    v = rec.__dict__
    e = encode_json_string
    try:
        seq, day, at = v["seq"], v["service_date"], v["checked_in_at"]
        if type(seq) is not int or type(day) is not dt.date or type(at) is not dt.datetime:
            raise TypeError
        text = (
            f'{{"card_uid":{_text(v["card_uid"])},"caregiver_id":{_text(v["caregiver_id"])},'
            f'"checked_in_at":"{at.isoformat(timespec="microseconds")}",'
            f'"device_id":{e(v["device_id"])},"distance":{_number(v["distance"])},'
            f'"elder_id":{e(v["elder_id"])},"flags":{e(v["flags"])},'
            f'"liveness":{_text(v["liveness"])},"margin":{_number(v["margin"])},'
            f'"method":{e(v["method"])},"reader":{_text(v["reader"])},'
            f'"reason":{_text(v["reason"])},"record_id":{e(v["record_id"])},'
            f'"seq":{int.__repr__(seq)},"service":{e(v["service"])},'
            f'"service_date":"{day.isoformat()}","slot":{e(v["slot"])}}}'
        )
    except TypeError:
        return canonical_bytes(rec.chained())
    return text.encode()


def claim_kind(method: str, flags: str) -> int:
    """What a record says of itself for the settlement: a manual check-in, a tap the face
    check flagged, or clean (the same tests settlement.compute_from_records makes on the
    stored body and flags)."""
    if method == "manual":
        return MANUAL
    if "no_face" in flags or "face_mismatch" in flags:
        return FLAGGED
    return CLEAN


def mark_claims(
    session: Session, claims: list[dict[str, Any]], received_at: str, look: bool = True
) -> None:
    """Set `claimed` on each new claim row: the first clean record of a slot not yet held
    (`look` False: assume no slot of the batch is held yet; store_claims' first attempt).

    Holding the device row does not serialise two points claiming the same slot: the partial
    unique index does. The loser of that race gets an IntegrityError and its retry (the
    ingest loop) sees the winner's claim here."""
    clean = [c for c in claims if c["kind"] == CLEAN]
    taken: set[ClaimKey] = set()
    if not look:
        pass
    elif clean and is_postgres(session):
        # One probe of the claims' unique index per key: the elder list with a date range
        # let the planner scan every claim of those days county-wide, per batch.
        taken.update(
            (e, sv, sl, d)
            for e, sv, sl, d in session.connection().execute(
                _CLAIMS_TAKEN_PG,
                {
                    "elders": sorted({c["elder_id"] for c in clean}),
                    "services": sorted({c["service"] for c in clean}),
                    "slots": sorted({c["slot"] for c in clean}),
                    "days": sorted({c["service_date"] for c in clean}),
                },
            )
        )
    elif clean:
        days = [c["service_date"] for c in clean]
        elders = sorted({c["elder_id"] for c in clean})
        for chunk in _chunks(elders):
            taken.update(
                (e, sv, sl, d)
                for e, sv, sl, d in session.connection().execute(
                    select(
                        MealClaim.elder_id,
                        MealClaim.service,
                        MealClaim.slot,
                        MealClaim.service_date,
                    ).where(
                        MealClaim.claimed,
                        MealClaim.elder_id.in_(chunk),
                        MealClaim.service_date.between(min(days), max(days)),
                    )
                )
            )
    # Within a batch (one received_at) the smaller record id first, as the settlement ranks.
    holders: dict[ClaimKey, dict[str, Any]] = {}
    contested: set[ClaimKey] = set()
    for c in sorted(claims, key=lambda c: str(c["record_id"])):
        key = (c["elder_id"], c["service"], c["slot"], c["service_date"])
        c["claimed"] = c["kind"] == CLEAN and key not in taken
        c["contested"] = False
        if c["claimed"]:
            taken.add(key)
            holders[key] = c
        elif c["kind"] == CLEAN:  # a second clean record of the slot: the settlement ranks it
            contested.add(key)
    for key in contested:
        if key in holders:
            holders[key]["contested"] = True
    for c in claims:  # the ranking's order is kept only where the settlement ranks
        c["received_at"] = None if c["claimed"] and not c["contested"] else received_at
    stored = sorted(key for key in contested if key not in holders)  # one lock order
    for chunk in _chunks(stored, 500):
        # Built only when needed: building a statement costs more than most batches' checks.
        received = (
            select(Record.received_at)
            .where(Record.record_id == MealClaim.record_id)
            .scalar_subquery()
        )
        session.execute(
            update(MealClaim)
            .where(
                MealClaim.claimed,
                tuple_(
                    MealClaim.elder_id, MealClaim.service, MealClaim.slot, MealClaim.service_date
                ).in_(chunk),
            )
            .values(contested=True, received_at=received)
        )
    # One order for every transaction: two batches claiming the same slots wait for each
    # other instead of deadlocking.
    claims.sort(key=lambda c: (c["elder_id"], c["service"], c["slot"], c["service_date"]))


def store_claims(session: Session, claims: list[dict[str, Any]], received_at: str) -> None:
    """Mark and insert the claim rows of a batch's accepted records.

    In a savepoint: when the insert conflicts — claims left behind by records deleted from the
    platform's `record` table and now sent again (reconciliation), or a slot a concurrent batch
    of another point claimed meanwhile — the stale claims of these record ids are dropped and
    the slots looked up again, once; a second conflict fails the transaction (retried whole).

    The first attempt assumes none of the batch's slots is held yet, without looking: the
    usual batch (a point's own elders, meals just served) is stored with no lookup at all, and
    the claims' unique index refuses it when a slot was held (a roaming elder's second meal,
    a re-sent batch): then the slots are looked up. Both give the same rows: a clean record
    whose slot is held makes the optimistic insert of that slot's claim conflict."""
    mark_claims(session, claims, received_at, look=False)
    try:
        with _savepoint(session):
            copy_rows(session, "meal_claim", claims)
        return
    except IntegrityError:
        log.debug("a slot of these %d claims is held; looking them up", len(claims))
    mark_claims(session, claims, received_at)
    try:
        with _savepoint(session):
            copy_rows(session, "meal_claim", claims)
        return
    except IntegrityError:
        log.warning("claims of %d records conflicted; looking again", len(claims))
    by_day: dict[dt.date, list[str]] = {}
    for c in claims:
        by_day.setdefault(c["service_date"], []).append(c["record_id"])
    for day, ids in by_day.items():
        for chunk in _chunks(ids):
            session.execute(
                delete(MealClaim).where(
                    MealClaim.service_date == day, MealClaim.record_id.in_(chunk)
                )
            )
    mark_claims(session, claims, received_at)
    copy_rows(session, "meal_claim", claims)


@contextlib.contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint around the claims' COPY. On PostgreSQL sent on the driver's connection, as
    the COPY is: the session's begin_nested() flushed the session and kept its own bookkeeping,
    ~0.1 ms of a batch for two one-line statements. Rolled back to on an IntegrityError, which
    is re-raised."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        with session.begin_nested():
            yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("SAVEPOINT claims")
    try:
        yield
    except IntegrityError:
        raw.execute("ROLLBACK TO SAVEPOINT claims")
        raise
    raw.execute("RELEASE SAVEPOINT claims")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# The claims of a batch's keys already held (mark_claims): every column of the partial unique
# index is an equality, so PostgreSQL probes it whatever its statistics say.
_CLAIMS_TAKEN_PG = text(
    "SELECT elder_id, service, slot, service_date FROM meal_claim WHERE claimed"
    " AND elder_id = ANY(CAST(:elders AS text[])) AND service = ANY(CAST(:services AS text[]))"
    " AND slot = ANY(CAST(:slots AS text[])) AND service_date = ANY(CAST(:days AS date[]))"
)
# A batch's record ids already stored: one array parameter instead of an IN list of 500
# bound values (compiled and parsed anew on both sides for every batch).
_HELD_BY_ID_PG = text(
    "SELECT record_id, device_id, hash, prev_hash, body FROM record"
    " WHERE record_id = ANY(CAST(:ids AS text[]))"
)

# held_by_id (part 0), the neighbours (1) and the checkpoints (2) of a contiguous batch at once:
# three index scans, one round trip instead of three (BatchIngest.run).
_HELD_AND_AROUND_PG = text(
    "SELECT 0, seq, record_id, device_id, hash, prev_hash, body FROM record"
    " WHERE record_id = ANY(CAST(:ids AS text[]))"
    " UNION ALL SELECT 1, seq, record_id, device_id, hash, prev_hash, body FROM record"
    " WHERE device_id = :device_id AND seq BETWEEN :low AND :high"
    " UNION ALL SELECT 2, seq, NULL, NULL, head_hash, NULL, NULL FROM checkpoint"
    " WHERE device_id = :device_id AND seq BETWEEN :low AND :high"
)


def copy_rows(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows (dicts) into `table` in one go; see copy_tuples."""
    if rows:
        columns = list(rows[0])
        row_of = operator.itemgetter(*columns)
        copy_tuples(session, table, columns, [row_of(r) for r in rows])


def copy_tuples(
    session: Session, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """Rows into `table` in one go: COPY on PostgreSQL (one round trip, no per-row
    statement), one executemany elsewhere. Errors come out as SQLAlchemy's (the ingest retry
    catches IntegrityError / OperationalError)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        values = [dict(zip(columns, r, strict=True)) for r in rows]
        session.execute(insert(PlatformBase.metadata.tables[table]), values)
        return
    import psycopg  # the PostgreSQL driver; only needed here

    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with raw.cursor() as cur, cur.copy(statement) as copy:
            write = copy.write_row
            for row in rows:
                write(row)
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
    except psycopg.errors.OperationalError as exc:  # deadlock, serialisation
        raise OperationalError(statement, None, exc) from exc


def _chunks(values: list[T], size: int = IN_CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _stamp(now: dt.datetime) -> str:
    return now.isoformat(timespec="microseconds")


class Held(NamedTuple):
    """What the checks need of a stored record (or one accepted earlier in the batch)."""

    record_id: str
    device_id: str
    hash: str
    prev_hash: str
    body: str


_HELD_COLUMNS = (Record.record_id, Record.device_id, Record.hash, Record.prev_hash, Record.body)
# A batch's stored neighbours and the signed checkpoints in its seq range (BatchIngest.run),
# the device's keys and its point's zone: built once, they run for every batch.
_NEIGHBOURS = select(Record.seq, *_HELD_COLUMNS).where(
    Record.device_id == bindparam("device_id"),
    Record.seq.between(bindparam("low"), bindparam("high")),
)
_CHECKPOINTS = select(CheckpointRow.seq, CheckpointRow.head_hash).where(
    CheckpointRow.device_id == bindparam("device_id"),
    CheckpointRow.seq.between(bindparam("low"), bindparam("high")),
)
_KEYS = (
    select(DeviceKeyRow.from_seq, DeviceKeyRow.until_seq, DeviceKeyRow.public_key)
    .where(DeviceKeyRow.device_id == bindparam("device_id"))
    .order_by(DeviceKeyRow.from_seq)
)
_ZONE = select(MealPoint.timezone).where(MealPoint.point_id == bindparam("point_id"))
_CLOSED_MONTHS = select(SettlementMonth.first_day, SettlementMonth.last_day).where(
    SettlementMonth.last_day >= bindparam("low"), SettlementMonth.first_day <= bindparam("high")
)
# The order of BatchIngest.run's record tuples.
_RECORD_COLUMNS = [
    "record_id", "device_id", "seq", "service_date", "elder_id", "service", "slot", "flags",
    "prev_hash", "hash", "signature", "body", "received_at", "signature_ok",
]  # fmt: skip


def held_by_id(session: Session, ids: list[str]) -> dict[str, Held]:
    """The stored records among these ids (a resend's duplicates, a reused id)."""
    if ids and is_postgres(session):
        return {
            row[0]: Held(*row) for row in session.connection().execute(_HELD_BY_ID_PG, {"ids": ids})
        }
    by_id: dict[str, Held] = {}
    for chunk in _chunks(ids):
        by_id.update(
            (row[0], Held(*row))
            for row in session.connection().execute(
                select(*_HELD_COLUMNS).where(Record.record_id.in_(chunk))
            )
        )
    return by_id


def raise_alert(
    session: Session,
    device: Device,
    now: dt.datetime,
    kind: str,
    detail: str,
    seq: int | None = None,
    record_id: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    """Store an alert for the auditor, with its evidence (JSON) for the console."""
    log.warning("ALERT device %s %s seq=%s: %s", device.device_id, kind, seq, detail)
    session.add(
        Alert(
            device_id=device.device_id,
            point_id=device.point_id,
            at=_stamp(now),
            kind=kind,
            seq=seq,
            record_id=record_id,
            detail=detail,
            evidence=json.dumps(evidence or {}, ensure_ascii=False, sort_keys=True),
        )
    )


def device_keys(session: Session, device: Device) -> list[tuple[int, int | None, Ed25519PublicKey]]:
    """(from_seq, until_seq, key) for every key the device has had; the current one last."""
    rows = session.connection().execute(_KEYS, {"device_id": device.device_id}).all()
    keys = [(start, until, _public_key(text)) for start, until, text in rows]
    return keys or [(1, None, _public_key(device.public_key))]


@functools.lru_cache(maxsize=4096)
def _public_key(text: str) -> Ed25519PublicKey:
    """A device key parsed once per process, not once per batch (the text is the key)."""
    return public_key_from_b64(text)


def site_zone(session: Session, point_id: str) -> zoneinfo.ZoneInfo:
    return zone_named(session.connection().scalar(_ZONE, {"point_id": point_id}))


def zone_named(name: str | None) -> zoneinfo.ZoneInfo:
    """A point's zone by name; the default when unset or unknown."""
    try:
        return zoneinfo.ZoneInfo(name or DEFAULT_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(DEFAULT_ZONE)


# A device's keys by (device, enrolment, current key): every change of a device's keys is an
# enrolment (a new code, a new `enrolled_with`); closing a key at retirement or at the start of
# a re-key also stops the device's uploads until that enrolment. Saves a query a batch.
_KEYS_SEEN: dict[tuple[str, str | None, str], list[tuple[int, int | None, Ed25519PublicKey]]] = {}
KEYS_SEEN_MAX = 20_000


def upload_keys(session: Session, device: Device) -> list[tuple[int, int | None, Ed25519PublicKey]]:
    """device_keys for an upload, memoised per enrolment (see _KEYS_SEEN)."""
    memo_key = (device.device_id, device.enrolled_with, device.public_key)
    keys = _KEYS_SEEN.get(memo_key)
    if keys is None:
        keys = device_keys(session, device)
        if len(_KEYS_SEEN) >= KEYS_SEEN_MAX:
            _KEYS_SEEN.clear()
        _KEYS_SEEN[memo_key] = keys
    return keys


class BatchIngest:
    """One batch of one device, checked against what the platform already holds."""

    def __init__(
        self,
        session: Session,
        device: Device,
        now: dt.datetime,
        limits: Limits | None = None,
        zone: zoneinfo.ZoneInfo | None = None,
    ) -> None:
        """`zone`: the point's, when the caller read it with the device row (records.py)."""
        self.session = session
        self.device = device
        self.now = now
        self.limits = limits or Limits()
        self.keys = upload_keys(session, device)
        self.zone = zone or site_zone(session, device.point_id)
        self.accepted_seqs: list[int] = []  # run(): ascending (records are checked in seq order)
        # Deferred: the hash, the chain and the checkpoints are checked here; the signature by
        # the background verifier (signature_check.py), which alerts on a forgery.
        self.deferred = self.limits.signatures == "deferred"
        today = now.astimezone(self.zone).date()
        self.latest_day = today + dt.timedelta(days=self.limits.max_days_ahead)
        self.today = today

    def key_for(self, seq: int) -> Ed25519PublicKey | None:
        if len(self.keys) == 1:  # the usual device: one key from its first record on
            start, until, key = self.keys[0]
            return key if start <= seq and (until is None or seq <= until) else None
        for start, until, key in self.keys:
            if start <= seq and (until is None or seq <= until):
                return key
        return None

    def _seq_filters(self, records: list[WireRecord]) -> list[Any]:
        """WHERE clauses on seq covering every record's seq and its two neighbours: one range
        for the usual contiguous batch (a 1,500-value IN list costs more to send and parse than
        the rows it finds), IN chunks when the seqs are scattered."""
        seqs = sorted({s for r in records for s in (r.seq - 1, r.seq, r.seq + 1)})
        if not seqs:
            return []
        low, high = seqs[0], seqs[-1]
        if high - low < 2 * len(seqs) + 16:
            return [(low, high)]
        return list(_chunks(seqs))

    def _stored_around(
        self, records: list[WireRecord]
    ) -> tuple[dict[str, Held], dict[int, Held], dict[int, set[str]]]:
        """What the checks compare a batch with: the stored records with its ids, the stored
        records at its seqs and their neighbours, and the signed checkpoints at those seqs."""
        ids = [r.record_id for r in records]
        dev = self.device.device_id
        by_seq: dict[int, Held] = {}
        checkpoints: dict[int, set[str]] = {}
        filters = self._seq_filters(records)
        if len(filters) == 1 and isinstance(filters[0], tuple) and is_postgres(self.session):
            # The usual batch on PostgreSQL: the three lookups in one round trip.
            low, high = filters[0]
            by_id = self._held_and_around(ids, low, high, by_seq, checkpoints)
            filters = []
        else:
            by_id = held_by_id(self.session, ids)
        for where in filters:
            conn = self.session.connection()
            if isinstance(where, tuple):  # the usual batch: statements built once
                span = {"device_id": dev, "low": where[0], "high": where[1]}
                neighbours = conn.execute(_NEIGHBOURS, span)
                committed = conn.execute(_CHECKPOINTS, span)
            else:
                neighbours = conn.execute(
                    select(Record.seq, *_HELD_COLUMNS).where(
                        Record.device_id == dev, Record.seq.in_(where)
                    )
                )
                committed = conn.execute(
                    select(CheckpointRow.seq, CheckpointRow.head_hash).where(
                        CheckpointRow.device_id == dev, CheckpointRow.seq.in_(where)
                    )
                )
            by_seq.update((row[0], Held(*row[1:])) for row in neighbours)
            for seq, head_hash in committed:
                checkpoints.setdefault(seq, set()).add(head_hash)
        return by_id, by_seq, checkpoints

    def run(self, batch: RecordBatch) -> BatchResult:
        records, twins = self._one_per_id(batch.records)
        by_id, by_seq, checkpoints = self._stored_around(records)
        dev = self.device.device_id
        accepted: list[str] = []
        duplicate: list[str] = []
        rejected: list[Rejection] = [
            Rejection(record_id=rid, reason=reason) for rid, reason in twins.items()
        ]
        rows: list[tuple[Any, ...]] = []
        claims: list[dict[str, Any]] = []
        point = self.device.point_id
        received_at = _stamp(self.now)
        signature_ok = None if self.deferred else True
        for rec in records:
            # Canonicalised once: the stored body is exactly the bytes the hash covers.
            canonical = canonical_record(rec)
            body = canonical.decode()
            outcome = self._check(rec, canonical, body, by_id, by_seq, checkpoints)
            if outcome == "duplicate":
                duplicate.append(rec.record_id)
            elif outcome is None:
                rows.append(
                    (
                        rec.record_id,
                        dev,
                        rec.seq,
                        rec.service_date,
                        rec.elder_id,
                        rec.service,
                        rec.slot,
                        rec.flags,
                        rec.prev_hash,
                        rec.hash,
                        rec.signature,
                        body,
                        received_at,
                        signature_ok,
                    )
                )
                claims.append(
                    {
                        "service_date": rec.service_date,
                        "record_id": rec.record_id,
                        "point_id": point,
                        "elder_id": rec.elder_id,
                        "service": rec.service,
                        "slot": rec.slot,
                        "kind": claim_kind(rec.method, rec.flags),
                        "claimed": False,
                        "contested": False,
                        "flags": rec.flags,
                        "signature_ok": signature_ok,
                        "received_at": received_at,
                        "reason": rec.reason if rec.method == "manual" else None,
                        "caregiver_id": rec.caregiver_id if rec.method == "manual" else None,
                    }
                )
                held = Held(rec.record_id, dev, rec.hash, rec.prev_hash, body)
                by_id[rec.record_id] = held
                by_seq[rec.seq] = held
                accepted.append(rec.record_id)
                self.accepted_seqs.append(rec.seq)
            else:
                rejected.append(Rejection(record_id=rec.record_id, reason=outcome))
        if claims:
            self._mark_late(claims)
        if rows:
            # Not an ORM object per record (that was a third of the request's time at 500
            # records a batch); not the ORM's bulk insert either: it replaces an explicit None
            # (signature not yet verified) with the column's default.
            copy_tuples(self.session, "record", _RECORD_COLUMNS, rows)
            # The settlement's narrow copy, in the same transaction (tables.MealClaim).
            store_claims(self.session, claims, received_at)
            self.device.held_count = (self.device.held_count or 0) + len(rows)
        return BatchResult(
            accepted=accepted, duplicate=duplicate, rejected=rejected, server_time=self.now
        )

    def _mark_late(self, claims: list[dict[str, Any]]) -> None:
        """Records of a month already closed (settled) are `late`: listed once in the next
        closed month's exceptions. A month closes only after its last day, so only a batch
        with a date before this month (a day ahead for the zones) needs the lookup."""
        days = [c["service_date"] for c in claims]
        soon = self.now.astimezone(self.zone).date() + dt.timedelta(days=1)
        if min(days) >= soon.replace(day=1):
            return
        closed = (
            self.session.connection()
            .execute(_CLOSED_MONTHS, {"low": min(days), "high": max(days)})
            .all()
        )
        if not closed:  # the usual answer, even for a backlog of past days
            return
        for c in claims:
            if any(first <= c["service_date"] <= last for first, last in closed):
                c["kind"] = LATE

    def _one_per_id(self, records: Iterable[WireRecord]) -> tuple[list[WireRecord], dict[str, str]]:
        """Each record_id once: identical copies collapse into one; an id sent twice with
        different content is rejected as a whole (neither copy stored), with an alert."""
        first: dict[str, WireRecord] = {}
        twins: dict[str, str] = {}
        for rec in records:
            seen = first.get(rec.record_id)
            if seen is None:
                first[rec.record_id] = rec
            elif seen != rec and rec.record_id not in twins:
                reason = "record_id appears twice in the batch with different content"
                raise_alert(
                    self.session, self.device, self.now, "id_reuse", reason, rec.seq, rec.record_id
                )
                twins[rec.record_id] = f"id_reuse: {reason}"
        kept = [r for rid, r in first.items() if rid not in twins]
        return sorted(kept, key=lambda r: r.seq), twins

    def _implausible_date(self, rec: WireRecord) -> str | None:
        """Why the record's dates cannot be a real meal, or None (issue 12, point 5)."""
        local_day = rec.checked_in_at.astimezone(self.zone).date()
        if rec.service_date != local_day:
            return (
                f"service_date {rec.service_date} differs from the check-in date {local_day} "
                f"({self.zone.key})"
            )
        today = self.today
        if rec.service_date < self.limits.earliest_service_date:
            return (
                f"service_date {rec.service_date} is before the programme "
                f"({self.limits.earliest_service_date})"
            )
        if rec.service_date > self.latest_day:
            return f"service_date {rec.service_date} is in the future (platform date {today})"
        return None

    def _held_and_around(
        self,
        ids: list[str],
        low: int,
        high: int,
        by_seq: dict[int, Held],
        checkpoints: dict[int, set[str]],
    ) -> dict[str, Held]:
        """held_by_id, the stored neighbours and the checkpoints of seqs low..high, by one
        statement (PostgreSQL); fills by_seq and checkpoints, returns by_id."""
        by_id: dict[str, Held] = {}
        params = {"ids": ids, "device_id": self.device.device_id, "low": low, "high": high}
        for part, seq, *held in self.session.connection().execute(_HELD_AND_AROUND_PG, params):
            if part == 0:
                by_id[held[0]] = Held(*held)
            elif part == 1:
                by_seq[seq] = Held(*held)
            else:
                checkpoints.setdefault(seq, set()).add(held[2])
        return by_id

    def _check(  # noqa: PLR0911, PLR0912 — one return per check reads as the list of checks
        self,
        rec: WireRecord,
        canonical: bytes,
        body: str,
        by_id: dict[str, Held],
        by_seq: dict[int, Held],
        checkpoints: dict[int, set[str]],
    ) -> str | None:
        """None to accept, "duplicate", or the reason for a rejection (alerted)."""
        dev = self.device.device_id

        def reject(kind: str, reason: str) -> str:
            raise_alert(self.session, self.device, self.now, kind, reason, rec.seq, rec.record_id)
            return f"{kind}: {reason}"

        if rec.device_id != dev:
            return reject("foreign", f"record belongs to device {rec.device_id!r}")
        stored = by_id.get(rec.record_id)
        if stored is not None:
            if stored.device_id == dev and stored.hash == rec.hash and stored.body == body:
                return "duplicate"
            return reject("id_reuse", "record_id already stored with different content")
        computed = hashlib.sha256(rec.prev_hash.encode() + b"\n" + canonical).hexdigest()
        if computed != rec.hash:  # = rec.computed_hash() (models.chain.link_hash)
            return reject("edited", "content does not match its hash")
        key = self.key_for(rec.seq)
        if key is None:
            return reject("forged", "no device key covers this seq")
        if not self.deferred and not verify(key, record_message(rec.hash), rec.signature):
            return reject("forged", "signature does not verify with the device key")
        implausible = self._implausible_date(rec)
        if implausible:
            return reject("implausible_date", implausible)
        holder = by_seq.get(rec.seq)
        if holder is not None:
            return reject("fork", f"seq {rec.seq} is already held by record {holder.record_id}")
        if rec.seq == 1 and rec.prev_hash != GENESIS_HASH:
            return reject("chain_break", "first record does not start from the genesis hash")
        prev = by_seq.get(rec.seq - 1)
        if prev is not None and prev.hash != rec.prev_hash:
            return reject(
                "chain_break",
                f"prev_hash conflicts with stored seq {rec.seq - 1} (edited/inserted)",
            )
        nxt = by_seq.get(rec.seq + 1)
        if nxt is not None and nxt.prev_hash != rec.hash:
            return reject(
                "chain_break", f"stored seq {rec.seq + 1} links to a different hash (edited)"
            )
        committed = checkpoints.get(rec.seq)
        if committed and rec.hash not in committed:
            return reject("checkpoint_conflict", "hash contradicts a signed checkpoint")
        if prev is None and rec.seq > 1:
            # Accepted: the predecessor may come later; the auditor sees the hole meanwhile.
            raise_alert(
                self.session, self.device, self.now, "gap", f"seq {rec.seq - 1} not held", rec.seq
            )
        return None


def store_checkpoint(
    session: Session, device: Device, cp: Checkpoint, now: dt.datetime
) -> CheckpointResult | None:
    """Record a signed checkpoint; None if its signature is bad (the caller answers 400)."""
    dev = device.device_id
    key = public_key_from_b64(device.public_key)
    if cp.device_id != dev or not verify(
        key, checkpoint_message(cp.device_id, cp.seq, cp.head_hash, cp.made_at), cp.signature
    ):
        raise_alert(session, device, now, "forged", "checkpoint signature does not verify", cp.seq)
        return None
    last = session.scalars(
        select(CheckpointRow)
        .where(CheckpointRow.device_id == dev)
        .order_by(CheckpointRow.id.desc())
        .limit(1)
    ).first()
    if last is not None and last.seq == cp.seq and last.head_hash == cp.head_hash:
        # Pushed every round; an unchanged head costs one lookup and no row.
        return CheckpointResult(status="ok", server_time=now)
    problems = []
    held = session.scalars(
        select(Record.hash).where(Record.device_id == dev, Record.seq == cp.seq)
    ).first()
    if cp.seq > 0 and held is not None and held != cp.head_hash:
        problems.append(f"seq {cp.seq} is stored with a different hash")
    earlier = session.scalars(
        select(CheckpointRow.head_hash).where(
            CheckpointRow.device_id == dev, CheckpointRow.seq == cp.seq
        )
    ).all()
    if any(h != cp.head_hash for h in earlier):
        problems.append(f"an earlier checkpoint committed seq {cp.seq} to a different hash")
    if last is not None and cp.seq < last.seq:
        problems.append(f"chain went back from seq {last.seq} to {cp.seq} (records deleted?)")
    session.add(
        CheckpointRow(
            device_id=dev,
            seq=cp.seq,
            head_hash=cp.head_hash,
            made_at=_stamp(cp.made_at),
            signature=cp.signature,
            received_at=_stamp(now),
        )
    )
    if problems:
        detail = "; ".join(problems)
        raise_alert(session, device, now, "checkpoint_conflict", detail, cp.seq)
        return CheckpointResult(status="conflict", detail=detail, server_time=now)
    return CheckpointResult(status="ok", server_time=now)
