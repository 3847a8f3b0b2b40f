"""Pulling the roster from the platform: incremental, signature-checked, applied atomically.

The cursor (the last applied version) is kept in the audit row that `models.roster.apply_rows`
writes in the same transaction as the elders, so the roster and its version can never disagree
after a crash. A roster that is unsigned, wrongly signed, malformed, for another point, or not
newer than ours is refused: logged, audited, and the current roster stays in force.

Card numbers are brought to the roster's configured form (`card_form`, injected by the kiosk:
sync may not import hardware/) exactly like a file import and a tap: a card sent as "04a23b1c"
used to be stored as given and never matched the "04A23B1C" a reader delivers. A roster with a
card number that cannot be read in that form is refused whole.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import select

from models.db import Store
from models.roster import RosterRow, apply_rows
from models.tables import AuditEvent
from sync.client import PlatformClient, PlatformError
from sync.signing import PlatformVerifier
from sync.wire import RosterElder, RosterPayload

log = logging.getLogger(__name__)

SOURCE_PREFIX = "platform:v"
# A card number as sent -> the roster's form (hardware.card_uid.normalise); ValueError if bad.
CardForm = Callable[[str], str]


@dataclass(frozen=True)
class RosterOutcome:
    status: Literal["applied", "unchanged", "refused"]
    version: int  # the version in force afterwards
    detail: str = ""
    elders: int = 0


def current_roster_version(store: Store) -> int:
    """The version of the last roster applied from the platform (0: none yet)."""
    with store.read() as session:
        details = session.scalars(
            select(AuditEvent.detail)
            .where(
                AuditEvent.kind == "roster_import",
                AuditEvent.detail.like(f'%"source": "{SOURCE_PREFIX}%'),
            )
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).all()
    if not details:
        return 0
    source = json.loads(details[0])["source"]
    return int(source.removeprefix(SOURCE_PREFIX))


def _row(e: RosterElder, card_form: CardForm | None) -> RosterRow:
    card = e.card_uid.strip() if e.card_uid else None
    if card and card_form is not None:
        card = card_form(card)  # ValueError: the caller refuses the roster
    return RosterRow(
        elder_id=e.elder_id,
        name=e.name,
        id_number_masked=e.id_number_masked,
        card_uid=card or None,
        group=e.group,
        contact_phone=e.contact_phone,
        status=e.status,
        agreement_signed=e.agreement_signed,
    )


def _refuse(store: Store, version: int, why: str, now: dt.datetime) -> RosterOutcome:
    log.error("roster refused, keeping version %d: %s", version, why)
    with store.write() as session:
        session.add(
            AuditEvent(
                at=now,
                kind="roster_refused",
                detail=json.dumps({"kept_version": version, "why": why}, ensure_ascii=False),
            )
        )
    return RosterOutcome("refused", version, why)


def pull_roster(  # noqa: PLR0911 — each refusal is its own early return
    store: Store,
    client: PlatformClient,
    verifier: PlatformVerifier,
    point_id: str,
    now: dt.datetime,
    card_form: CardForm | None = None,
) -> RosterOutcome:
    """One pull; raises PlatformError only for transport/HTTP failures (the caller backs off)."""
    since = current_roster_version(store)
    try:
        signed = client.roster(since)
    except PlatformError as exc:
        if exc.kind != "bad_response":
            raise
        return _refuse(store, since, f"malformed roster response: {exc.message}", now)
    if signed is None:
        return RosterOutcome("unchanged", since)
    # The signature is checked on the exact bytes before anything inside is looked at.
    if not verifier.roster_ok(signed.payload, signed.signature):
        return _refuse(store, since, "signature does not verify with the platform key", now)
    try:
        payload = RosterPayload.model_validate_json(signed.payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        return _refuse(store, since, f"malformed roster payload: {first}", now)
    if payload.point_id != point_id:
        return _refuse(store, since, f"roster is for point {payload.point_id!r}", now)
    if payload.version <= since:
        return _refuse(store, since, f"version {payload.version} is not newer than {since}", now)
    if payload.since > since:
        return _refuse(store, since, f"delta starts at {payload.since}, we hold {since}", now)
    try:
        rows = [_row(e, card_form) for e in payload.elders]
    except ValueError as exc:
        return _refuse(store, since, f"card number unreadable in the roster's form: {exc}", now)
    cards = [r.card_uid for r in rows if r.card_uid]
    if len(cards) != len(set(cards)):
        return _refuse(store, since, "the same card number is given to two elders", now)
    report = apply_rows(store, rows, now, source=f"{SOURCE_PREFIX}{payload.version}")
    removed = sum(1 for e in payload.elders if e.status != "active")
    log.info(
        "roster version %d applied: %d new, %d updated, %d not active",
        payload.version, report.added, report.updated, removed,
    )  # fmt: skip
    return RosterOutcome("applied", payload.version, elders=len(payload.elders))
