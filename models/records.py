"""Appending a meal record: seq, hash-chain link, signature and outbox row in the caller's
transaction.

The signature is made by a callable the caller passes in (the kiosk hands over the device key's
`sign_record`; models/ never sees a key and imports nothing of ours). A row that reaches the
table without a valid signature was therefore written by something other than the daemon.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.chain import GENESIS_HASH, link_hash
from models.tables import EvidenceState, MealRecord, Outbox

# record hash -> base64 Ed25519 signature over it (sync.signing.DeviceKey.sign_record)
RecordSigner = Callable[[str], str]


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort like the records were made."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 68) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def chain_head(session: Session) -> tuple[int, str]:
    """(last seq, last hash) of the chain; (0, genesis) when empty."""
    row = session.execute(
        select(MealRecord.seq, MealRecord.hash).order_by(MealRecord.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def legacy_until_seq(session: Session) -> int:
    """Records up to this seq were written before signing at insert (migration 0004); they were
    signed at their first upload and may still be. Every later record carries its signature
    from the transaction that inserted it."""
    value = session.scalar(select(EvidenceState.legacy_until_seq))
    return int(value or 0)


def append_record(session: Session, *, signer: RecordSigner | None, **fields: Any) -> MealRecord:
    """Insert a record linked to the chain head and signed, with its outbox row.

    Must run inside the writer's transaction (`Store.write()`), which serialises appends and
    makes seq gapless: a failed transaction rolls its seq back with it. Without a signer the
    database refuses the row (trigger `meal_record_signed_at_insert`).
    """
    seq, prev_hash = chain_head(session)
    fields = {"record_id": uuid7(), **fields, "seq": seq + 1, "prev_hash": prev_hash}
    record_hash = link_hash(prev_hash, fields)
    signature = signer(record_hash) if signer is not None else None
    record = MealRecord(**fields, hash=record_hash, signature=signature)
    session.add(record)
    session.add(Outbox(record_id=record.record_id, attempts=0))
    session.flush()  # surface constraint violations (UNIQUE per slot) inside the transaction
    return record
