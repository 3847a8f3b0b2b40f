"""Draining the outbox to the platform, exactly once.

Exactly-once is the product of three things:
- the platform is idempotent by record_id (a resend is a "duplicate", never a second record);
- a row is marked uploaded only in the write transaction that applies the platform's answer,
  so a lost answer, a dropped link or a power cut leaves it pending and it is simply resent;
- nothing is deleted here: a rejected record stays, with the platform's reason, and is not
  resent (it shows in `kiosk sync --status` and in health).

Signing: every record is signed with the device key in the transaction that inserts it
(models.records.append_record, migration 0004); the uploader sends the stored signature and
never signs a record itself, so a row someone appended with the sqlite3 shell reaches the
platform unsigned (or with a signature that does not verify) and is rejected there as forged.
The one exception is a record made before migration 0004 and not yet uploaded (seq <=
evidence_state.legacy_until_seq): it is signed at its first upload, as it always was.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.db import Store
from models.records import legacy_until_seq
from models.tables import AuditEvent, MealRecord, Outbox, PlatformReceipt
from sync.client import PlatformClient, PlatformError
from sync.signing import DeviceKey
from sync.wire import BatchResult, RecordBatch, WireRecord

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (records done this round, records pending at start)
# Sent in place of a signature for a row that has none (it was not written by the daemon): not
# base64, so it can never verify; the platform rejects the record and alerts the county.
UNSIGNED = "unsigned"


@dataclass(frozen=True)
class RoundResult:
    """What one upload round did; `error` is set when it stopped on a failure."""

    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    bytes_sent: int = 0
    pending_left: int = 0
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def pending_count(store: Store) -> int:
    with store.read() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.uploaded_at.is_(None), Outbox.rejected_reason.is_(None))
            )
            or 0
        )


class Uploader:
    def __init__(
        self,
        store: Store,
        client: PlatformClient,
        key: DeviceKey,
        device_id: str,
        *,
        batch_size: int = 500,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.client = client
        self.key = key
        self.device_id = device_id
        self.batch_size = batch_size
        self.clock = clock

    def run_round(self, progress: Progress | None = None) -> RoundResult:
        """Send batches until the outbox is drained or a batch fails."""
        total = pending_count(self.store)
        done = batches = accepted = duplicate = rejected = sent_bytes = 0
        after_seq = 0  # a cursor, so each row is tried once per round and batches stay O(n)
        while True:
            records = self._next_batch(after_seq)
            if not records:
                break
            after_seq = records[-1].seq
            outcome = self._send(records)
            if isinstance(outcome, PlatformError):
                return RoundResult(
                    batches, accepted, duplicate, rejected, sent_bytes,
                    pending_count(self.store), str(outcome), outcome.retry_after,
                )  # fmt: skip
            result, size = outcome
            batches += 1
            accepted += len(result.accepted)
            duplicate += len(result.duplicate)
            rejected += len(result.rejected)
            sent_bytes += size
            done += len(records)
            if progress:
                progress(done, max(total, done))
        return RoundResult(
            batches, accepted, duplicate, rejected, sent_bytes, pending_count(self.store)
        )

    # ------------------------------------------------------------------ steps

    def _next_batch(self, after_seq: int) -> list[WireRecord]:
        """The oldest pending records after `after_seq` (rows tried this round), signed."""
        with self.store.read() as session:
            query = (
                select(MealRecord)
                .join(Outbox, Outbox.record_id == MealRecord.record_id)
                .where(
                    MealRecord.seq > after_seq,
                    Outbox.uploaded_at.is_(None),
                    Outbox.rejected_reason.is_(None),
                )
                .order_by(MealRecord.seq)
                .limit(self.batch_size)
            )
            rows = list(session.scalars(query))
            legacy = legacy_until_seq(session)
        unsigned = {
            r.record_id: self.key.sign_record(r.hash)
            for r in rows
            if not r.signature and r.seq <= legacy
        }
        strays = [r.seq for r in rows if not r.signature and r.seq > legacy]
        if strays:
            log.error("records %s carry no signature: not written by the daemon", strays[:20])
        if unsigned:
            # Records made before signing at insert only (the trigger refuses any other).
            with self.store.write() as session:
                session.execute(
                    update(MealRecord),
                    [{"record_id": rid, "signature": sig} for rid, sig in unsigned.items()],
                )
        return [
            WireRecord(
                **{c: getattr(r, c) for c in WireRecord.model_fields if c != "signature"},
                signature=r.signature or unsigned.get(r.record_id, UNSIGNED),
            )
            for r in rows
        ]

    def _send(self, records: list[WireRecord]) -> tuple[BatchResult, int] | PlatformError:
        batch = RecordBatch(device_id=self.device_id, sent_at=self.clock(), records=records)
        ids = [r.record_id for r in records]
        try:
            result, size = self.client.post_records(batch)
            _check_answer(result, set(ids))
        except PlatformError as exc:
            log.error("upload of %d records failed: %s", len(records), exc)
            self._note_failure(ids, str(exc))
            return exc
        self._apply(result, set(ids), seqs=(records[0].seq, records[-1].seq))
        return result, size

    def _apply(self, result: BatchResult, ids: set[str], seqs: tuple[int, int]) -> None:
        """Store the platform's answer: marks, reasons and an audit line, in ONE transaction."""
        now = self.clock()
        acked = result.accepted + result.duplicate
        answered = set(acked) | {r.record_id for r in result.rejected}
        unanswered = ids - answered
        with self.store.write() as session:
            # The platform's signed receipt for exactly these ids: the only thing that lets the
            # database mark them uploaded (trigger outbox_ack_needs_receipt).
            receipt_id = keep_receipt(session, "batch", self.device_id, result, acked, now)
            for chunk in _chunks(acked):
                session.execute(
                    update(Outbox)
                    .where(Outbox.record_id.in_(chunk), Outbox.uploaded_at.is_(None))
                    .values(
                        uploaded_at=now,
                        receipt_id=receipt_id,
                        attempts=Outbox.attempts + 1,
                        last_error=None,
                    )
                )
            for rej in result.rejected:
                session.execute(
                    update(Outbox)
                    .where(Outbox.record_id == rej.record_id)
                    .values(
                        rejected_reason=rej.reason,
                        last_error=rej.reason,
                        attempts=Outbox.attempts + 1,
                    )
                )
                session.add(
                    AuditEvent(
                        at=now,
                        kind="sync_rejected",
                        detail=json.dumps({"record_id": rej.record_id, "reason": rej.reason}),
                    )
                )
            for chunk in _chunks(sorted(unanswered)):
                session.execute(
                    update(Outbox)
                    .where(Outbox.record_id.in_(chunk))
                    .values(attempts=Outbox.attempts + 1, last_error="not in the platform's answer")
                )
            session.add(
                AuditEvent(
                    at=now,
                    kind="sync_upload",
                    detail=json.dumps(
                        {
                            "seqs": list(seqs),
                            "accepted": len(result.accepted),
                            "duplicate": len(result.duplicate),
                            "rejected": len(result.rejected),
                            "server_time": result.server_time.isoformat(),
                        }
                    ),
                )
            )
        for rej in result.rejected:
            log.warning("platform rejected record %s: %s", rej.record_id, rej.reason)
        if unanswered:
            log.warning("%d records missing from the platform's answer", len(unanswered))

    def _note_failure(self, ids: list[str], message: str) -> None:
        with self.store.write() as session:
            for chunk in _chunks(ids):
                session.execute(
                    update(Outbox)
                    .where(Outbox.record_id.in_(chunk))
                    .values(attempts=Outbox.attempts + 1, last_error=message[:500])
                )


def keep_receipt(
    session: Session,
    kind: str,
    device_id: str,
    result: BatchResult,
    held: list[str],
    now: dt.datetime,
) -> int | None:
    """Store the platform's signed receipt for `held` as received; its id, None if none held."""
    if not held:
        return None
    if result.receipt is None:
        log.warning("the platform's answer carries no receipt signature")
    receipt = PlatformReceipt(
        kind=kind,
        device_id=device_id,
        server_time=result.server_time.isoformat(timespec="microseconds"),
        record_ids=json.dumps(sorted(held)),
        signature=result.receipt,
        received_at=now,
    )
    session.add(receipt)
    session.flush()
    return receipt.id


def _check_answer(result: BatchResult, ids: set[str]) -> None:
    """An answer naming records we did not send, or one record twice, is not trusted at all."""
    named = result.accepted + result.duplicate + [r.record_id for r in result.rejected]
    if len(named) != len(set(named)):
        raise PlatformError("bad_response", "a record id appears more than once in the answer")
    strangers = set(named) - ids
    if strangers:
        raise PlatformError(
            "bad_response", f"answer names {len(strangers)} records that were not sent"
        )


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
