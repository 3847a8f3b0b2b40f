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


def drain(sessions: sessionmaker[Session], clock: Callable[[], dt.datetime]) -> VerifyRound:
    """Verify until nothing is left unchecked; the totals."""
    checked = forged = 0
    while True:
        with sessions() as session, session.begin():
            done = verify_pending(session, clock())
        checked, forged = checked + done.checked, forged + done.forged
        if done.checked < BATCH:
            return VerifyRound(checked, forged)


def run_verifier(
    sessions: sessionmaker[Session],
    clock: Callable[[], dt.datetime],
    interval_s: float,
    stop: threading.Event,
) -> None:
    """The background loop: drain the queue, sleep `interval_s`, again, until `stop`."""
    while not stop.is_set():
        try:
            done = drain(sessions, clock)
            if done.forged:
                log.warning("signature verifier: %d of %d forged", done.forged, done.checked)
        except Exception:  # logged and retried next period; the records wait unchecked
            log.exception("signature verifier round failed")
        stop.wait(interval_s)
