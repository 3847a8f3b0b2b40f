"""Applying a roster (from a county file or, later, from the platform) to elders and cards.

Kept with the data so both `kiosk roster import` and sync/'s roster pull apply rosters the same
way: one transaction, audited.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models.db import Store
from models.tables import AuditEvent, Card, Elder


@dataclass(frozen=True)
class RosterRow:
    elder_id: str
    name: str
    id_number_masked: str
    card_uid: str | None
    group: str
    contact_phone: str
    status: str
    agreement_signed: bool


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    cards: int = 0
    rows: list[RosterRow] = field(default_factory=list)


def pinyin_initials(name: str) -> str:
    # Imported here: its phrase dictionary takes 0.3 s to load, which every daemon start (and
    # every restart after a power cut) would otherwise pay before the first tap.
    from pypinyin import Style, lazy_pinyin

    return "".join(p[0] for p in lazy_pinyin(name, style=Style.FIRST_LETTER) if p).upper()


def apply_rows(
    store: Store,
    rows: Iterable[RosterRow],
    now: dt.datetime,
    source: str,
    chunk_size: int | None = None,
) -> ImportReport:
    """Upsert elders and their cards: in one transaction, or in transactions of `chunk_size`
    rows (a large file import: the write lock is then never held for long, and re-running an
    interrupted import completes it). The audit row goes with the last chunk.

    Pinyin initials are computed before any transaction, and each chunk is a handful of
    set-based statements: nothing slow runs under the lock."""
    report = ImportReport(rows=list(rows))
    initials = [pinyin_initials(row.name) for row in report.rows]
    size = chunk_size or max(len(report.rows), 1)
    starts = list(range(0, len(report.rows), size)) or [0]
    for start in starts:
        with store.write() as session:
            _upsert_chunk(
                session,
                report.rows[start : start + size],
                initials[start : start + size],
                now,
                report,
            )
            if start == starts[-1]:
                session.add(
                    AuditEvent(
                        at=now,
                        kind="roster_import",
                        detail=json.dumps(
                            {"source": source, "added": report.added, "updated": report.updated},
                            ensure_ascii=False,
                        ),
                    )
                )
    return report


def _upsert_chunk(
    session: Session,
    rows: list[RosterRow],
    initials: list[str],
    now: dt.datetime,
    report: ImportReport,
) -> None:
    if not rows:
        return
    ids = [row.elder_id for row in rows]
    known = set(session.scalars(select(Elder.elder_id).where(Elder.elder_id.in_(ids))))
    report.added += sum(1 for i in ids if i not in known)
    report.updated += sum(1 for i in ids if i in known)
    values = [
        {
            "elder_id": row.elder_id,
            "name": row.name,
            "id_number_masked": row.id_number_masked,
            "group_name": row.group,
            "contact_phone": row.contact_phone,
            "status": row.status,
            "agreement_signed": row.agreement_signed,
            "pinyin_initials": letters,
            "updated_at": now,
        }
        for row, letters in zip(rows, initials, strict=True)
    ]
    stmt = sqlite_insert(Elder)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Elder.elder_id],
            set_={c: stmt.excluded[c] for c in values[0] if c != "elder_id"},
        ),
        values,
    )
    cards = [(row.card_uid, row.elder_id) for row in rows if row.card_uid]
    if cards:
        # A card re-issued to someone else moves with the roster.
        session.execute(delete(Card).where(Card.uid.in_([uid for uid, _ in cards])))
        session.execute(
            sqlite_insert(Card),
            [{"uid": uid, "elder_id": elder, "bound_at": now} for uid, elder in cards],
        )
        report.cards += len(cards)
