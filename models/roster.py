"""Applying a roster (from a county file or, later, from the platform) to elders and cards.

Kept with the data so both `kiosk roster import` and sync/'s roster pull apply rosters the same
way: one transaction, audited.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete

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
    store: Store, rows: Iterable[RosterRow], now: dt.datetime, source: str
) -> ImportReport:
    """Upsert elders and their cards in one transaction."""
    report = ImportReport(rows=list(rows))
    with store.write() as session:
        for row in report.rows:
            elder = session.get(Elder, row.elder_id)
            if elder is None:
                elder = Elder(elder_id=row.elder_id)
                session.add(elder)
                report.added += 1
            else:
                report.updated += 1
            elder.name = row.name
            elder.id_number_masked = row.id_number_masked
            elder.group_name = row.group
            elder.contact_phone = row.contact_phone
            elder.status = row.status
            elder.agreement_signed = row.agreement_signed
            elder.pinyin_initials = pinyin_initials(row.name)
            elder.updated_at = now
            if row.card_uid:
                # A card re-issued to someone else moves with the roster.
                session.execute(delete(Card).where(Card.uid == row.card_uid))
                session.flush()
                session.add(Card(uid=row.card_uid, elder_id=row.elder_id, bound_at=now))
                report.cards += 1
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
