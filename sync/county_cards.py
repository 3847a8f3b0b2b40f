"""The county card list on the kiosk (roaming elders, 全城通): pulled, checked, kept atomically.

The list is signed by the platform key like the roster (under its own domain, so a roster
signature cannot pass for a list). Unsigned, wrongly signed or malformed: refused, logged and
audited, and the list held so far stays in force. So is a list whose signed `version` is
lower than the one held (a replayed older list: a rollback to withdrawn cards); an equal
version is the same content and is taken again. Accepted: card numbers brought to the
roster's form, this point's own elders left out, and written to `county_cards.json` in the data
directory through a temporary file and os.replace (a crash leaves the old or the new list).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from models.db import Store
from models.tables import AuditEvent
from sync.client import PlatformClient, PlatformError
from sync.roster_pull import CardForm
from sync.signing import PlatformVerifier
from sync.wire import CountyCardsPayload, county_cards_message, verify

log = logging.getLogger(__name__)

FILE_NAME = "county_cards.json"


@dataclass(frozen=True)
class CountyCard:
    elder_id: str
    home_point: str
    home_name: str  # the home point's name; its id when the platform has none
    name: str


@dataclass(frozen=True)
class CountyCardsOutcome:
    status: Literal["applied", "refused"]
    cards: int = 0
    detail: str = ""
    version: int | None = None


def list_path(store: Store) -> Path:
    return store.db_path.parent / FILE_NAME


def _refuse(store: Store, why: str, now: dt.datetime) -> CountyCardsOutcome:
    log.error("county card list refused, keeping the one held: %s", why)
    with store.write() as session:
        session.add(
            AuditEvent(
                at=now,
                kind="county_cards_refused",
                detail=json.dumps({"why": why}, ensure_ascii=False),
            )
        )
    return CountyCardsOutcome("refused", detail=why)


def pull_county_cards(
    store: Store,
    client: PlatformClient,
    verifier: PlatformVerifier,
    point_id: str,
    now: dt.datetime,
    card_form: CardForm | None = None,
) -> CountyCardsOutcome:
    """One pull; raises PlatformError only for transport/HTTP failures (the caller backs off)."""
    try:
        signed = client.county_cards()
    except PlatformError as exc:
        if exc.kind != "bad_response":
            raise
        return _refuse(store, f"malformed response: {exc.message}", now)
    # The signature is checked on the exact bytes before anything inside is looked at.
    if not verify(verifier.public_key, county_cards_message(signed.payload), signed.signature):
        return _refuse(store, "signature does not verify with the platform key", now)
    try:
        payload = CountyCardsPayload.model_validate_json(signed.payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        return _refuse(store, f"malformed payload: {first}", now)
    held = held_version(store)
    if held is not None and payload.version < held:
        # A signed list older than the one held is a replay: it could bring back cards that
        # have since been withdrawn (a lost card, an elder who died).
        return _refuse(
            store, f"older list: version {payload.version} < version {held} held (a rollback)", now
        )
    cards: dict[str, list[str]] = {}
    try:
        for card, elder_id, home, name in payload.cards:
            if home == point_id:
                continue  # our own elders come with our roster
            uid = card_form(card.strip()) if card_form else card.strip()
            cards[uid] = [elder_id, home, payload.points.get(home) or home, name]
    except ValueError as exc:
        return _refuse(store, f"card number unreadable in the roster's form: {exc}", now)
    path = list_path(store)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        doc = {"version": payload.version, "issued_at": payload.issued_at.isoformat()}
        json.dump(doc | {"cards": cards}, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    log.info(
        "county card list version %d applied: %d cards of other points", payload.version, len(cards)
    )
    return CountyCardsOutcome("applied", cards=len(cards), version=payload.version)


def held_version(store: Store) -> int | None:
    """The version of the list held; None when none is held (or it cannot be read: the next
    signed list replaces it). A list kept before lists were versioned counts as version 0."""
    try:
        with list_path(store).open(encoding="utf-8") as f:
            # Only the head is needed, but the file is one JSON document: json.load reads it.
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("county card list held is unreadable, the next one replaces it: %s", exc)
        return None
    version = doc.get("version", 0) if isinstance(doc, dict) else 0
    return version if isinstance(version, int) else 0


_cache: dict[Path, tuple[tuple[int, int], dict[str, list[str]]]] = {}


def lookup(store: Store, card_uid: str) -> CountyCard | None:
    """The visitor holding `card_uid` on the list held (re-read when the file changes)."""
    path = list_path(store)
    try:
        st = path.stat()
        mtime = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None
    held = _cache.get(path)
    if held is None or held[0] != mtime:
        try:
            cards = json.loads(path.read_text(encoding="utf-8"))["cards"]
        except (OSError, ValueError, KeyError) as exc:
            log.error("county card list unreadable: %s", exc)
            return None
        held = (mtime, cards)
        _cache[path] = held
    row = held[1].get(card_uid)
    return CountyCard(*row) if row else None
