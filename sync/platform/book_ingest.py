"""The village's books as the platform receives them: each entry's hash recomputed, its chain
link checked against what this device sent before, its signature checked with the device's
current key; then stored once. The answer is a BatchResult over entry ids, with a signed book
receipt (the kiosk may only mark an entry uploaded with it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.platform.tables import BookEntryRow, Device
from sync.wire import (
    BOOK_KINDS,
    GENESIS_HASH,
    BatchResult,
    BookBatch,
    Rejection,
    WireBookEntry,
    b64encode,
    book_receipt_message,
    public_key_from_b64,
    record_message,
    verify,
)


def book_head(session: Session, device_id: str) -> tuple[int, str]:
    row = session.execute(
        select(BookEntryRow.seq, BookEntryRow.hash)
        .where(BookEntryRow.device_id == device_id)
        .order_by(BookEntryRow.seq.desc())
        .limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def _problems(entry: WireBookEntry, device: Device, head: tuple[int, str]) -> Iterator[str]:
    """Why the entry cannot be held, cheapest check first (lazily: the first one answers)."""
    seq, last_hash = head
    if entry.device_id != device.device_id:
        yield "entry names another device"
    if entry.kind not in BOOK_KINDS:
        yield f"unknown kind of entry: {entry.kind}"
    if entry.computed_hash() != entry.hash:
        yield "content does not match its hash (edited)"
    key = public_key_from_b64(device.public_key)
    if not verify(key, record_message(entry.hash), entry.signature):
        yield "signature does not verify with the device's current key"
    if entry.seq != seq + 1:
        yield f"gap: expected seq {seq + 1}, got {entry.seq}"
    if entry.prev_hash != last_hash:
        yield "prev_hash does not match the previous entry (fork)"


def ingest_books(
    session: Session, device: Device, batch: BookBatch, now: dt.datetime, key: Ed25519PrivateKey
) -> BatchResult:
    accepted: list[str] = []
    duplicate: list[str] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    head = book_head(session, device.device_id)
    for entry in sorted(batch.entries, key=lambda e: e.seq):
        if entry.entry_id in seen:  # the same id twice in one batch: answered once
            continue
        seen.add(entry.entry_id)
        held = session.get(BookEntryRow, entry.entry_id)
        if held is not None:
            if held.hash == entry.hash and held.device_id == device.device_id:
                duplicate.append(entry.entry_id)
            else:
                rejected.append(
                    Rejection(record_id=entry.entry_id, reason="id held with other content")
                )
            continue
        problem = next(_problems(entry, device, head), None)
        if problem is not None:
            rejected.append(Rejection(record_id=entry.entry_id, reason=problem))
            continue
        session.add(
            BookEntryRow(
                entry_id=entry.entry_id,
                device_id=device.device_id,
                point_id=device.point_id,
                seq=entry.seq,
                kind=entry.kind,
                entry_date=entry.entry_date,
                body=entry.body,
                corrects=entry.corrects,
                caregiver_id=entry.caregiver_id,
                created_at=entry.created_at.isoformat(timespec="microseconds"),
                prev_hash=entry.prev_hash,
                hash=entry.hash,
                signature=entry.signature,
                received_at=now.isoformat(timespec="microseconds"),
            )
        )
        session.flush()
        head = (entry.seq, entry.hash)
        accepted.append(entry.entry_id)
    held_ids = accepted + duplicate
    receipt = key.sign(book_receipt_message(device.device_id, now, held_ids))
    return BatchResult(
        accepted=accepted,
        duplicate=duplicate,
        rejected=rejected,
        server_time=now,
        receipt=b64encode(receipt),
    )
