"""Has this terminal's chain been rolled back below what the platform acknowledged?

Deleting the newest records (the sqlite3 shell, or a restored old backup) leaves a chain that
is internally perfect, so the chain check cannot see it; and the kiosk would then serve the same
elders again and fork its own history (the platform rejects the next real meals). What the
insider cannot fake is the platform's signature: every accepted checkpoint comes back with a
signed ack (kept in platform_receipt), the platform's newest ack is fetched again at every
checkpoint push, and every batch receipt names the records the platform holds. The chain must
reach every acknowledged checkpoint with the same hash, and every acknowledged record must
still be here; otherwise the kiosk refuses to record until a technician restores the missing
records from the platform's copy (`kiosk recover --from-platform`, sync/recovery.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import Store
from models.records import chain_head
from models.tables import MealRecord, PlatformReceipt
from sync.signing import PlatformVerifier

log = logging.getLogger(__name__)


def keep_checkpoint_ack(
    store: Store,
    device_id: str,
    seq: int,
    head_hash: str,
    server_time: dt.datetime,
    ack: str,
    now: dt.datetime,
) -> bool:
    """Store a checkpoint ack if it reaches further than every one kept so far."""
    with store.write() as session:
        kept = session.scalar(
            select(func.max(PlatformReceipt.seq)).where(PlatformReceipt.kind == "checkpoint")
        )
        if kept is not None and kept >= seq:
            return False
        session.add(
            PlatformReceipt(
                kind="checkpoint",
                device_id=device_id,
                server_time=server_time.isoformat(timespec="microseconds"),
                record_ids="[]",
                seq=seq,
                head_hash=head_hash,
                signature=ack,
                received_at=now,
            )
        )
    return True


def checkpoint_problem(
    session: Session, platform: PlatformVerifier | None, verified: set[int] | None = None
) -> str | None:
    """The cheap half, run before every check-in: does the chain reach the newest checkpoint
    ack that verifies (two indexed lookups; `verified` caches the ack ids already checked)?"""
    good = verified if verified is not None else set()
    head_seq, _ = chain_head(session)
    acks = session.scalars(
        select(PlatformReceipt)
        .where(PlatformReceipt.kind == "checkpoint")
        .order_by(PlatformReceipt.seq.desc())
    )
    for ack in acks:
        if platform is not None and ack.id not in good:
            if not platform.checkpoint_ack_ok(
                ack.device_id, ack.seq or 0, ack.head_hash or "", ack.server_time,
                ack.signature or "",
            ):  # fmt: skip
                continue
            good.add(ack.id)
        held = session.scalar(select(MealRecord.hash).where(MealRecord.seq == ack.seq))
        if held is None and (ack.seq or 0) > 0:
            return (
                f"rolled back: the platform acknowledged the chain up to seq {ack.seq}, "
                f"this terminal holds only up to seq {head_seq}"
            )
        if held is not None and held != ack.head_hash:
            return f"rewritten: seq {ack.seq} differs from the checkpoint the platform acked"
        return None  # the newest valid ack is reached with the same hash
    return None


def missing_acknowledged(session: Session) -> str | None:
    """The thorough half (evidence thread, doctor): every record a receipt names is here."""
    named: set[str] = set()
    for ids in session.scalars(
        select(PlatformReceipt.record_ids).where(PlatformReceipt.kind.in_(("batch", "recovery")))
    ):
        named.update(json.loads(ids or "[]"))
    if not named:
        return None
    missing = named - set(session.scalars(select(MealRecord.record_id)))
    if missing:
        return f"rolled back: {len(missing)} record(s) the platform acknowledged are missing here"
    return None


def rollback_problem(
    store: Store, platform: PlatformVerifier | None, verified: set[int] | None = None
) -> str | None:
    """Why the local chain is behind what the platform acknowledged, or None.

    Only acks whose signature verifies with the platform key count (all of them when no key is
    configured: then a forged ack can only stop check-in, never hide a deletion)."""
    with store.read() as session:
        return checkpoint_problem(session, platform, verified) or missing_acknowledged(session)
