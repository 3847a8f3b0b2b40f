"""The deferred signature verifier: device signatures checked off the request path.

One Ed25519 verification costs ~143 µs here, so checking every record's signature while the
kiosk waits caps ingest near 14,000 records/s on two cores before the database does anything
(issue 14, point 3). With `Limits.signatures == "deferred"` the request path checks what is
cheap and carries integrity at ingest — the record's hash over its content, its link to stored
neighbours (fork, edit, insertion), the signed checkpoints — and stores the record with
`signature_ok` NULL. This verifier then checks those signatures in the background:

- a valid one sets `signature_ok` true;
- an invalid one sets it false and raises a `forged` alert with its evidence (the hash, the
  signature, the key it was checked with). The record stays stored — nothing received is
  lost — but it is not verified: the settlement must not pay it (`signature_ok IS NOT TRUE`
  is an exception, see docs/scale.md).

What the deferral gives up: a forged record is answered "accepted" to the device that sent it
(it authenticated with its own token, and its hash and chain were consistent), and is flagged
seconds later instead of rejected in the answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from sync.platform.ingest import device_keys, raise_alert
from sync.platform.tables import Device, MealClaim, Record
from sync.wire import record_message, verify

log = logging.getLogger(__name__)

BATCH = 2000  # records checked per transaction (~0.3 s of Ed25519 on one core)
UNCHECKED_INDEX = "ix_record_signature_unchecked"


@dataclass(frozen=True)
class VerifyRound:
    checked: int
    forged: int
    yielded: bool = False  # stopped early: uploads were in flight (YieldToIngest)

    @property
    def empty(self) -> bool:
        return self.checked == 0


def ensure_index(engine: Engine) -> None:
    """A partial index over the unchecked records only: the verifier's queue stays as small
    as its backlog, whatever the size of the record table."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {UNCHECKED_INDEX} ON record (device_id, seq) "
                "WHERE signature_ok IS NULL"
            )
        )


_MARK_RECORDS_PG = text(
    "UPDATE record SET signature_ok = :ok WHERE record_id = ANY(CAST(:ids AS text[]))"
)
# By the claims' primary key (day, record): pairs of the two arrays.
_MARK_CLAIMS_PG = text(
    "UPDATE meal_claim SET signature_ok = :ok FROM unnest(CAST(:days AS date[]),"
    " CAST(:ids AS text[])) AS k(day, id) WHERE meal_claim.service_date = k.day"
    " AND meal_claim.record_id = k.id"
)


def _key_for(
    keys: list[tuple[int, int | None, Ed25519PublicKey]], seq: int
) -> Ed25519PublicKey | None:
    for start, until, key in keys:
        if start <= seq and (until is None or seq <= until):
            return key
    return None


def verify_pending(session: Session, now: dt.datetime, limit: int = BATCH) -> VerifyRound:
    """Check up to `limit` unchecked signatures in the caller's transaction."""
    query = (
        select(
            Record.record_id,
            Record.device_id,
            Record.seq,
            Record.hash,
            Record.signature,
            Record.service_date,
        )
        .where(Record.signature_ok.is_(None))
        .order_by(Record.device_id, Record.seq)
        .limit(limit)
        # Two verifiers (two platform processes) never check the same rows twice.
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(query).all()
    if not rows:
        return VerifyRound(0, 0)
    devices: dict[str, Device] = {}
    keys: dict[str, list[tuple[int, int | None, Ed25519PublicKey]]] = {}
    good: list[str] = []
    bad: list[str] = []
    days: dict[str, dt.date] = {}
    for record_id, device_id, seq, record_hash, signature, service_date in rows:
        days[record_id] = service_date
        if device_id not in devices:
            device = session.get(Device, device_id)
            assert device is not None  # record.device_id is a foreign key
            devices[device_id] = device
            keys[device_id] = device_keys(session, device)
        key = _key_for(keys[device_id], seq)
        if key is not None and verify(key, record_message(record_hash), signature):
            good.append(record_id)
            continue
        bad.append(record_id)
        raise_alert(
            session,
            devices[device_id],
            now,
            "forged",
            "signature does not verify with the device key (checked after ingest; the record "
            "is stored unverified and is not paid)",
            seq,
            record_id,
            evidence={
                "hash": record_hash,
                "signature": signature,
                "checked_with": "no key covers this seq" if key is None else "device key",
            },
        )
    postgres = session.get_bind().dialect.name == "postgresql"
    for ids, ok in ((good, True), (bad, False)):
        if ids and postgres:
            # One array parameter each: an IN list of 2,000 bound values was compiled by
            # SQLAlchemy and parsed by PostgreSQL anew every round (docs/scale.md).
            session.execute(_MARK_RECORDS_PG, {"ok": ok, "ids": ids})
            session.execute(
                _MARK_CLAIMS_PG,
                {"ok": ok, "ids": ids, "days": [days[record_id] for record_id in ids]},
            )
        elif ids:
            session.execute(
                update(Record).where(Record.record_id.in_(ids)).values(signature_ok=ok),
                execution_options={"synchronize_session": False},
            )
            # The settlement's copy in step, by its primary key (day, record).
            by_day: dict[dt.date, list[str]] = {}
            for record_id in ids:
                by_day.setdefault(days[record_id], []).append(record_id)
            for day, day_ids in by_day.items():
                session.execute(
                    update(MealClaim)
                    .where(MealClaim.service_date == day, MealClaim.record_id.in_(day_ids))
                    .values(signature_ok=ok),
                    execution_options={"synchronize_session": False},
                )
    return VerifyRound(len(rows), len(bad))


def drain(
    sessions: sessionmaker[Session],
    clock: Callable[[], dt.datetime],
    yield_now: Callable[[], bool] | None = None,
) -> VerifyRound:
    """Verify until nothing is left unchecked (or, before a round, `yield_now()` says to stop
    for now); the totals."""
    checked = forged = 0
    while True:
        if yield_now is not None and yield_now():
            return VerifyRound(checked, forged, yielded=True)
        with sessions() as session, session.begin():
            done = verify_pending(session, clock())
        checked, forged = checked + done.checked, forged + done.forged
        if done.checked < BATCH:
            return VerifyRound(checked, forged)


# Other transactions in flight on the platform's database that make it "busy" (ingest
# holding its connections), and how long the verifier may keep yielding to them at a stretch.
BUSY_TRANSACTIONS = 4
MAX_YIELD_S = 30.0
YIELD_POLL_S = 0.5
_IN_FLIGHT_PG = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
)


class YieldToIngest:
    """Whether the verifier should wait: uploads are being stored right now.

    The background process runs at the lowest CPU priority, but the database work it asks for
    does not: its UPDATEs of `record` and `meal_claim` cost PostgreSQL ~40 µs a record, more
    than storing it, and at a lunch peak they competed with the uploads for the same cores
    (docs/scale.md). So, on PostgreSQL, a round starts only when fewer than BUSY_TRANSACTIONS
    other transactions are in flight; yielding lasts at most MAX_YIELD_S at a stretch, then one
    round runs whatever the load, so verification (and a forgery's alert) is delayed, never
    starved. A county's real uploads (a few records a second) never make it wait."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.since: float | None = None

    def busy(self) -> bool:
        with self.sessions() as session:
            return int(session.execute(_IN_FLIGHT_PG).scalar_one()) >= BUSY_TRANSACTIONS

    def __call__(self) -> bool:
        if not self.busy():
            self.since = None
            return False
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= MAX_YIELD_S:
            self.since = now  # one round now, then yield again
            return False
        return True


def run_verifier(
    sessions: sessionmaker[Session],
    clock: Callable[[], dt.datetime],
    interval_s: float,
    stop: threading.Event,
) -> None:
    """The background loop: drain the queue, sleep `interval_s`, again, until `stop`. On
    PostgreSQL it yields to uploads in flight (YieldToIngest), polling every YIELD_POLL_S."""
    with sessions() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    gate = YieldToIngest(sessions) if postgres else None
    while not stop.is_set():
        wait = interval_s
        try:
            done = drain(sessions, clock, gate)
            if done.forged:
                log.warning("signature verifier: %d of %d forged", done.forged, done.checked)
            if done.yielded:
                wait = min(interval_s, YIELD_POLL_S)
        except Exception:  # logged and retried next period; the records wait unchecked
            log.exception("signature verifier round failed")
        stop.wait(wait)
