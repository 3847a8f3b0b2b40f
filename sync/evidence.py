"""Checking the kiosk's own evidence: the chain, the signatures, the outbox.

Triggers make the database refuse edits, but anyone with a shell can drop a trigger; what they
cannot do without the device key is sign. This module recomputes what the triggers only guard:
every link and hash, every record's signature (made at insert, or at upload for records older
than migration 0004), and the outbox against the records. `kiosk doctor` runs it in full; the
daemon runs it at start and then incrementally (only records after the last verified one, plus
cheap whole-table counts), and health shows the result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from models.chain import GENESIS_HASH, SignatureCheck, verify_chain
from models.db import Store
from models.records import legacy_until_seq
from models.tables import MealRecord, Outbox

log = logging.getLogger(__name__)

MAX_LISTED = 10  # problems listed per kind; the count says how many more
CHUNK = 2000


@dataclass(frozen=True)
class EvidenceReport:
    """What was checked and what is wrong (English, for technicians and logs)."""

    records: int = 0
    head_seq: int = 0
    verified_seq: int = 0  # every record up to here passed
    problems: tuple[str, ...] = ()
    signatures_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def _record_dicts(rows: Iterable[MealRecord]) -> list[dict[str, Any]]:
    return [{c.key: getattr(r, c.key) for c in r.__mapper__.column_attrs} for r in rows]


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
            rows = _record_dicts(
                s.scalars(
                    select(MealRecord)
                    .where(MealRecord.seq > cursor)
                    .order_by(MealRecord.seq)
                    .limit(CHUNK)
                )
            )
        if not rows:
            break
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


def audit_evidence(store: Store, signature_ok: SignatureCheck | None) -> EvidenceReport:
    """Everything, from the first record (kiosk doctor)."""
    count, head, problems = structure_problems(store)
    good_seq, _, faults = verify_records(store, signature_ok)
    return EvidenceReport(
        records=count,
        head_seq=head,
        verified_seq=good_seq,
        problems=tuple(problems + faults),
        signatures_checked=signature_ok is not None,
    )


@dataclass
class EvidenceMonitor:
    """The daemon's running check: full at start, then only what is new (thread-safe)."""

    store: Store
    signature_ok: SignatureCheck | None
    report: EvidenceReport = field(default_factory=EvidenceReport)
    _verified: tuple[int, str] = (0, GENESIS_HASH)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> EvidenceReport:
        with self._lock:
            count, head, problems = structure_problems(self.store)
            seq, head_hash = self._verified
            if head < seq:
                seq, head_hash = 0, GENESIS_HASH  # records vanished: start over
            good_seq, good_hash, faults = verify_records(
                self.store, self.signature_ok, seq, head_hash
            )
            self._verified = (good_seq, good_hash)
            self.report = EvidenceReport(
                records=count,
                head_seq=head,
                verified_seq=good_seq,
                problems=tuple(problems + faults),
                signatures_checked=self.signature_ok is not None,
            )
            if self.report.problems:
                log.error("local evidence inconsistent: %s", "; ".join(self.report.problems))
            return self.report
