"""Uploading the village's books: pending book entries in seq order, exactly once.

Like the record uploader, smaller: entries are few (a handful a day). An entry is marked
uploaded only with the platform's signed books receipt naming it (migration 0008); a rejected
entry keeps its row with the platform's reason, for the technician to see.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from models.books import BookEntry, BookOutbox
from models.db import Store
from sync.client import PlatformClient, PlatformError
from sync.uploader import keep_receipt
from sync.wire import BatchResult, BookBatch, WireBookEntry

log = logging.getLogger(__name__)
BATCH = 200


@dataclass(frozen=True)
class BooksRound:
    sent: int
    accepted: int
    duplicate: int
    rejected: int


def pending_books(store: Store) -> int:
    with store.read() as s:
        rows = s.scalars(
            select(BookOutbox.entry_id).where(
                BookOutbox.uploaded_at.is_(None), BookOutbox.rejected_reason.is_(None)
            )
        ).all()
        return len(rows)


def wire_entry(row: BookEntry) -> WireBookEntry:
    return WireBookEntry(
        entry_id=row.entry_id,
        seq=row.seq,
        device_id=row.device_id,
        kind=row.kind,
        entry_date=row.entry_date,
        body=row.body,
        corrects=row.corrects,
        caregiver_id=row.caregiver_id,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
        signature=row.signature,
    )


class BookUploader:
    def __init__(
        self,
        store: Store,
        client: PlatformClient,
        device_id: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.store = store
        self.client = client
        self.device_id = device_id
        self.clock = clock

    def run_round(self) -> BooksRound:
        """Send everything pending, a batch at a time; PlatformError when the link fails."""
        totals = [0, 0, 0, 0]
        while True:
            with self.store.read() as s:
                rows = s.scalars(
                    select(BookEntry)
                    .join(BookOutbox, BookOutbox.entry_id == BookEntry.entry_id)
                    .where(BookOutbox.uploaded_at.is_(None), BookOutbox.rejected_reason.is_(None))
                    .order_by(BookEntry.seq)
                    .limit(BATCH)
                ).all()
                entries = [wire_entry(r) for r in rows]
            if not entries:
                return BooksRound(*totals)
            batch = BookBatch(device_id=self.device_id, sent_at=self.clock(), entries=entries)
            result = self.client.post_books(batch)
            sent = {e.entry_id for e in entries}
            answered = set(result.accepted) | set(result.duplicate)
            answered |= {r.record_id for r in result.rejected}
            if not answered <= sent:
                raise PlatformError("bad_response", "the answer names entries never sent")
            self._apply(result.accepted + result.duplicate, result)
            totals[0] += len(entries)
            totals[1] += len(result.accepted)
            totals[2] += len(result.duplicate)
            totals[3] += len(result.rejected)
            if not answered:  # nothing moved: do not loop on the same batch
                return BooksRound(*totals)

    def reconcile(self) -> int:
        """Re-send acknowledged entries the platform no longer holds; returns how many.

        The platform's head must be a point of our own chain: anything else (a different hash
        at that seq) is a conflict for a person to look at, logged and left alone.
        """
        head = self.client.books_head()
        with self.store.read() as s:
            ours = s.scalar(select(BookEntry.hash).where(BookEntry.seq == head.seq))
            if head.seq and ours != head.hash:
                log.error("the platform's books head (seq %d) is not in our chain", head.seq)
                return 0
            rows = s.scalars(
                select(BookEntry)
                .join(BookOutbox, BookOutbox.entry_id == BookEntry.entry_id)
                .where(BookEntry.seq > head.seq, BookOutbox.uploaded_at.is_not(None))
                .order_by(BookEntry.seq)
            ).all()
            missing = [wire_entry(r) for r in rows]
        resent = 0
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            batch = BookBatch(device_id=self.device_id, sent_at=self.clock(), entries=chunk)
            result = self.client.post_books(batch)
            resent += len(result.accepted)
            for rej in result.rejected:
                log.error("re-sent book entry %s rejected: %s", rej.record_id, rej.reason)
        if resent:
            log.warning("re-sent %d book entries the platform had lost", resent)
        return resent

    def _apply(self, held: list[str], result: BatchResult) -> None:
        now = self.clock()
        with self.store.write() as session:
            receipt_id = keep_receipt(session, "books", self.device_id, result, held, now)
            session.execute(
                update(BookOutbox)
                .where(BookOutbox.entry_id.in_(held), BookOutbox.uploaded_at.is_(None))
                .values(uploaded_at=now, receipt_id=receipt_id, attempts=BookOutbox.attempts + 1)
            )
            for rej in result.rejected:
                log.error("book entry %s rejected by the platform: %s", rej.record_id, rej.reason)
                session.execute(
                    update(BookOutbox)
                    .where(BookOutbox.entry_id == rej.record_id)
                    .values(rejected_reason=rej.reason, attempts=BookOutbox.attempts + 1)
                )
