"""Checking the kiosk's own evidence: the chain, the signatures, the outbox.

Triggers make the database refuse edits, but anyone with a shell can drop a trigger; what they
cannot do without the device key is sign. This module recomputes what the triggers only guard:
every link and hash, every record's signature (made at insert, or at upload for records older
than migration 0004), and the outbox against the records. `kiosk doctor` runs it in full; the
daemon runs it at start and then incrementally (only records after the last verified one, plus
cheap whole-table counts), and health shows the result.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from models.chain import GENESIS_HASH, SignatureCheck, verify_chain
from models.db import Store
from models.records import legacy_until_seq
from models.tables import MealRecord, Outbox, PlatformReceipt
from sync.rollback import rollback_problem
from sync.signing import PlatformVerifier

log = logging.getLogger(__name__)

MAX_LISTED = 10  # problems listed per kind; the count says how many more
CHUNK = 2000
RAW_RECORDS = text(
    "SELECT "
    + ", ".join(c.name for c in MealRecord.__table__.columns)
    + " FROM meal_record WHERE seq > :after ORDER BY seq LIMIT :n"
)


@dataclass(frozen=True)
class EvidenceReport:
    """What was checked and what is wrong (English, for technicians and logs)."""

    records: int = 0
    head_seq: int = 0
    verified_seq: int = 0  # every record up to here passed
    problems: tuple[str, ...] = ()
    signatures_checked: bool = True
    # The chain is behind (or differs from) what the platform acknowledged: no recording.
    rolled_back: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _listed(kind: str, items: list[str]) -> list[str]:
    if not items:
        return []
    more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return [f"{kind}: {'; '.join(items[:MAX_LISTED])}{more}"]


def structure_problems(store: Store) -> tuple[int, int, list[str]]:
    """Cheap whole-table checks: (records, head seq, problems)."""
    with store.read() as s:
        count, head = s.execute(select(func.count(), func.max(MealRecord.seq))).one()
        no_outbox = s.scalar(
            select(func.count())
            .select_from(MealRecord)
            .outerjoin(Outbox, Outbox.record_id == MealRecord.record_id)
            .where(Outbox.record_id.is_(None))
        )
    count, head = int(count or 0), int(head or 0)
    problems = []
    if count != head:
        problems.append(f"chain: {head - count} record(s) missing below seq {head}")
    if no_outbox:
        problems.append(f"outbox: {no_outbox} record(s) have no outbox row (deleted?)")
    return count, head, problems


def verify_records(
    store: Store,
    signature_ok: SignatureCheck | None,
    after_seq: int = 0,
    after_hash: str = GENESIS_HASH,
    pause_s: float = 0.0,
) -> tuple[int, str, list[str]]:
    """Links, hashes and signatures of the records after `after_seq`, in chunks.

    Returns (last seq that verified cleanly, its hash, problems)."""
    faults: list[str] = []
    good_seq, good_hash = after_seq, after_hash
    with store.read() as s:
        legacy = legacy_until_seq(s)
    cursor, prev = after_seq, after_hash
    while True:
        with store.read() as s:
            # The stored text as is (times and dates are kept in exactly their canonical
            # form): no ORM objects, no parsing; a row written in any other form fails its hash.
            rows = [
                dict(r) for r in s.execute(RAW_RECORDS, {"after": cursor, "n": CHUNK}).mappings()
            ]
        if not rows:
            break
        if pause_s:
            time.sleep(pause_s)  # a full check at start leaves the GIL to the tap path
        found = verify_chain(rows, signature_ok, legacy, after=(cursor, prev))
        if not faults:  # still clean so far: advance to just before the first fault
            first_bad = min((f.seq for f in found), default=rows[-1]["seq"] + 1)
            for row in rows:
                if row["seq"] >= first_bad:
                    break
                good_seq, good_hash = row["seq"], row["hash"]
        faults += [f"seq {f.seq} {f.problem}" for f in found]
        cursor, prev = rows[-1]["seq"], rows[-1]["hash"]
    return good_seq, good_hash, _listed("chain", faults)


def _receipt_verifies(platform: PlatformVerifier, r: PlatformReceipt, ids: set[str]) -> bool:
    """The receipt's signature, checked against the message of its kind."""
    if not r.signature:
        return False
    if r.kind == "checkpoint":
        return platform.checkpoint_ack_ok(
            r.device_id, r.seq or 0, r.head_hash or "", r.server_time, r.signature
        )
    if r.kind == "books":  # the village's books (sync/book_uploader.py)
        return platform.book_receipt_ok(r.device_id, r.server_time, sorted(ids), r.signature)
    return platform.receipt_ok(r.device_id, r.server_time, sorted(ids), r.signature)


def receipt_problems(
    store: Store, platform: PlatformVerifier | None, known_good: set[int] | None = None
) -> list[str]:
    """Every outbox row marked uploaded must rest on a platform receipt that names it and whose
    signature verifies with the platform key (`known_good`: receipt ids verified earlier)."""
    good = known_good if known_good is not None else set()
    bad: list[str] = []
    forged_ids: set[int] = set()
    covers: dict[int, tuple[str, set[str], int | None]] = {}
    with store.read() as s:
        receipts = s.scalars(select(PlatformReceipt).order_by(PlatformReceipt.id)).all()
        uploaded = s.execute(
            select(Outbox.record_id, Outbox.receipt_id, MealRecord.seq)
            .join(MealRecord, MealRecord.record_id == Outbox.record_id)
            .where(Outbox.uploaded_at.is_not(None))
        ).all()
    first_batch = min((r.id for r in receipts if r.kind != "legacy"), default=None)
    for r in receipts:
        ids = set(json.loads(r.record_ids or "[]"))
        covers[r.id] = (r.kind, ids, r.seq)
        if r.kind == "legacy":
            if first_batch is not None and r.id > first_batch:
                bad.append(f"receipt {r.id}: a legacy receipt made after signed ones (forged)")
                forged_ids.add(r.id)
            continue
        if r.id in good or platform is None:
            continue
        ok = _receipt_verifies(platform, r, ids)
        if ok:
            good.add(r.id)
        else:
            bad.append(f"receipt {r.id} ({r.kind}) does not verify with the platform key")
            forged_ids.add(r.id)
    orphans: list[str] = []
    for record_id, receipt_id, seq in uploaded:
        cover = covers.get(receipt_id) if receipt_id is not None else None
        if cover is None:
            orphans.append(f"seq {seq} marked uploaded without a receipt")
            continue
        kind, ids, upto = cover
        named = seq <= (upto or 0) if kind == "legacy" else record_id in ids
        if not named:
            orphans.append(f"seq {seq} marked uploaded by receipt {receipt_id}, which omits it")
        elif receipt_id in forged_ids:
            orphans.append(f"seq {seq} marked uploaded by forged receipt {receipt_id}")
    return _listed("receipts", bad) + _listed("outbox", orphans)


def audit_evidence(
    store: Store, signature_ok: SignatureCheck | None, platform: PlatformVerifier | None = None
) -> EvidenceReport:
    """Everything, from the first record (kiosk doctor)."""
    count, head, problems = structure_problems(store)
    problems += receipt_problems(store, platform)
    rolled_back = rollback_problem(store, platform)
    good_seq, _, faults = verify_records(store, signature_ok)
    return EvidenceReport(
        records=count,
        head_seq=head,
        verified_seq=good_seq,
        problems=tuple(problems + faults + ([rolled_back] if rolled_back else [])),
        signatures_checked=signature_ok is not None,
        rolled_back=rolled_back,
    )


@dataclass
class EvidenceMonitor:
    """The daemon's running check: full at start, then only what is new (thread-safe)."""

    store: Store
    signature_ok: SignatureCheck | None
    platform: PlatformVerifier | None = None
    # Pause between chunks of a long check (the daemon's thread: taps keep their latency).
    pause_s: float = 0.0
    report: EvidenceReport = field(default_factory=EvidenceReport)
    _good_receipts: set[int] = field(default_factory=set)
    _verified: tuple[int, str] = (0, GENESIS_HASH)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> EvidenceReport:
        with self._lock:
            count, head, problems = structure_problems(self.store)
            problems += receipt_problems(self.store, self.platform, self._good_receipts)
            seq, head_hash = self._verified
            if head < seq:
                seq, head_hash = 0, GENESIS_HASH  # records vanished: start over
            good_seq, good_hash, faults = verify_records(
                self.store, self.signature_ok, seq, head_hash, self.pause_s
            )
            self._verified = (good_seq, good_hash)
            rolled_back = rollback_problem(self.store, self.platform)
            self.report = EvidenceReport(
                records=count,
                head_seq=head,
                verified_seq=good_seq,
                problems=tuple(problems + faults + ([rolled_back] if rolled_back else [])),
                signatures_checked=self.signature_ok is not None,
                rolled_back=rolled_back,
            )
            if self.report.problems:
                log.error("local evidence inconsistent: %s", "; ".join(self.report.problems))
            return self.report
