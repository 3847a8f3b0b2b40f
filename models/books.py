"""The village's books (公示): purchases and expenses, income, donations, meal fees, 助洁
procedure, caregivers' health checks, township patrols and notice postings.

Every entry is append-only. A correction is a new entry that names the one it corrects
(`corrects`); nothing is ever edited or deleted (triggers in migration 0005 refuse it). Entries
form their own hash chain (pure functions in models/chain.py), separate from the meal records'
chain so that a meal record's seq stays the gapless count the subsidy is paid on, and each entry
is signed with the device key in the transaction that inserts it, exactly like a meal record.
What the entry says lives in `body`: canonical JSON whose fields depend on `kind` (validated in
kiosk/touchscreen/books.py), with every amount as a decimal string ("12.50"), never a float.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.chain import GENESIS_HASH, book_link_hash
from models.records import uuid7
from models.tables import AwareDateTime, Base


class BookEntry(Base):
    """One entry of the village's books; `body` is the kind's canonical JSON."""

    __tablename__ = "book_entry"

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # gapless, from 1, own chain
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24), index=True)
    entry_date: Mapped[dt.date] = mapped_column(Date, index=True)  # the day it is about
    body: Mapped[str] = mapped_column(Text)
    corrects: Mapped[str | None] = mapped_column(String(36))  # the entry this one replaces
    caregiver_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(128))


class BookOutbox(Base):
    """Upload state of a book entry; the row lives until the platform has acknowledged it."""

    __tablename__ = "book_outbox"

    entry_id: Mapped[str] = mapped_column(ForeignKey("book_entry.entry_id"), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(AwareDateTime(), index=True)
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    # The platform's signed receipt (kind "books") naming this entry (migration 0008).
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("platform_receipt.id"))


def canonical_body(fields: dict[str, Any]) -> str:
    """The one text form of a body: sorted keys, compact, Chinese kept as is."""
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def book_head(session: Session) -> tuple[int, str]:
    """(last seq, last hash) of the books' chain; (0, genesis) when empty."""
    row = session.execute(
        select(BookEntry.seq, BookEntry.hash).order_by(BookEntry.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def append_entry(session: Session, *, signer: Callable[[str], str], **fields: Any) -> BookEntry:
    """Insert an entry linked to the books' head, signed, with its outbox row.

    Runs inside the single writer's transaction, which makes seq gapless.
    """
    seq, prev_hash = book_head(session)
    fields = {"entry_id": uuid7(), **fields, "seq": seq + 1}
    entry_hash = book_link_hash(prev_hash, fields)
    entry = BookEntry(**fields, prev_hash=prev_hash, hash=entry_hash, signature=signer(entry_hash))
    session.add(entry)
    session.add(BookOutbox(entry_id=entry.entry_id, attempts=0))
    session.flush()
    return entry
