"""The county card list on the kiosk (roaming elders, 全城通): pulled, checked, kept atomically.

The list is signed by the platform key like the roster (under its own domain, so a roster
signature cannot pass for a list). Unsigned, wrongly signed or malformed: refused, logged and
audited, and the list held so far stays in force. So is a list whose signed `version` is
lower than the one held (a replayed older list: a rollback to withdrawn cards); an equal
version is the same content and is taken again. Accepted: card numbers brought to the
roster's form, this point's own elders left out, and written to `county_cards.json` in the data
directory through a temporary file and os.replace (a crash leaves the old or the new list).

The list held keeps its ETag (`sync.wire.county_cards_etag`, worked out from its version and
signature); each pull sends it as If-None-Match, and a 304 means "unchanged": the file is not
rewritten. Every pull that got an answer (applied or unchanged) is noted with its time in
`county_cards.checked` beside it, for `kiosk sync --status` (`list_status`).
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
from sync.wire import CountyCardsPayload, county_cards_etag, county_cards_message, verify

log = logging.getLogger(__name__)

FILE_NAME = "county_cards.json"
CHECKED_NAME = "county_cards.checked"


@dataclass(frozen=True)
class CountyCard:
    elder_id: str
    home_point: str
    home_name: str  # the home point's name; its id when the platform has none
    name: str


@dataclass(frozen=True)
class CountyCardsOutcome:
    status: Literal["applied", "unchanged", "refused"]
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


def pull_county_cards(  # noqa: PLR0911 — one return per refusal reads as the list of checks
    store: Store,
    client: PlatformClient,
    verifier: PlatformVerifier,
    point_id: str,
    now: dt.datetime,
    card_form: CardForm | None = None,
) -> CountyCardsOutcome:
    """One pull; raises PlatformError only for transport/HTTP failures (the caller backs off)."""
    held = _held_head(store)
    try:
        signed = client.county_cards(etag=held.etag)
    except PlatformError as exc:
        if exc.kind != "bad_response":
            raise
        return _refuse(store, f"malformed response: {exc.message}", now)
    if signed is None:
        if held.etag is None:  # a 304 to a pull that named no list: nothing to keep using
            return _refuse(store, "HTTP 304 without an ETag sent", now)
        _note_checked(store, now, "unchanged", held.version)
        log.info("county card list version %s unchanged (304)", held.version)
        return CountyCardsOutcome("unchanged", cards=held.cards, version=held.version)
    # The signature is checked on the exact bytes before anything inside is looked at.
    if not verify(verifier.public_key, county_cards_message(signed.payload), signed.signature):
        return _refuse(store, "signature does not verify with the platform key", now)
    try:
        payload = CountyCardsPayload.model_validate_json(signed.payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        return _refuse(store, f"malformed payload: {first}", now)
    if held.version is not None and payload.version < held.version:
        # A signed list older than the one held is a replay: it could bring back cards that
        # have since been withdrawn (a lost card, an elder who died).
        return _refuse(
            store,
            f"older list: version {payload.version} < version {held.version} held (a rollback)",
            now,
        )
    cards: dict[str, list[str]] = {}
    try:
        for card, elder_id, home, name in payload.cards:
            if home == point_id:
                continue  # our own elders come with our roster
            uid = card_form(card.strip()) if card_form else card.strip()
            # The pinyin initials for the caregiver's search are worked out here, in the
            # background pull (1.4 s for 20,000 names), not on her first search.
            initials = _initials(name)
            cards[uid] = [elder_id, home, payload.points.get(home) or home, name, initials]
    except ValueError as exc:
        return _refuse(store, f"card number unreadable in the roster's form: {exc}", now)
    path = list_path(store)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        doc = {
            "version": payload.version,
            "issued_at": payload.issued_at.isoformat(),
            "etag": county_cards_etag(payload.version, signed.signature),
        }
        json.dump(doc | {"cards": cards}, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _note_checked(store, now, "applied", payload.version)
    log.info(
        "county card list version %d applied: %d cards of other points", payload.version, len(cards)
    )
    return CountyCardsOutcome("applied", cards=len(cards), version=payload.version)


@dataclass(frozen=True)
class _Head:
    version: int | None = None
    etag: str | None = None
    cards: int = 0


def _held_head(store: Store) -> _Head:
    """Version, ETag and size of the list held; empty when none is held (or it cannot be read:
    the next signed list replaces it). A list kept before lists were versioned counts as
    version 0; one kept before ETags has none (the next pull fetches the list whole)."""
    try:
        with list_path(store).open(encoding="utf-8") as f:
            # Only the head is needed, but the file is one JSON document: json.load reads it.
            doc = json.load(f)
    except FileNotFoundError:
        return _Head()
    except (OSError, ValueError) as exc:
        log.error("county card list held is unreadable, the next one replaces it: %s", exc)
        return _Head()
    if not isinstance(doc, dict):
        return _Head(version=0)
    version, etag, cards = doc.get("version", 0), doc.get("etag"), doc.get("cards")
    return _Head(
        version if isinstance(version, int) else 0,
        etag if isinstance(etag, str) and etag else None,
        len(cards) if isinstance(cards, dict) else 0,
    )


def held_version(store: Store) -> int | None:
    """The version of the list held; None when none is held or it cannot be read."""
    return _held_head(store).version


def _note_checked(store: Store, now: dt.datetime, outcome: str, version: int | None) -> None:
    """When the platform last answered a pull (a small file of its own: a 304 leaves the list
    itself untouched)."""
    path = store.db_path.parent / CHECKED_NAME
    tmp = path.with_suffix(".checked.tmp")
    doc = {"checked_at": now.isoformat(), "outcome": outcome, "version": version}
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # only the status line suffers
        log.warning("could not note the county card list check: %s", exc)


@dataclass(frozen=True)
class CountyCardsStatus:
    version: int | None  # of the list held; None: none held
    cards: int  # cards of other points on it
    applied_at: dt.datetime | None  # when the list held was written
    checked_at: dt.datetime | None  # when the platform last answered a pull
    last_outcome: str | None  # "applied" or "unchanged"


def list_status(store: Store) -> CountyCardsStatus:
    """What `kiosk sync --status` shows of the county card list."""
    head = _held_head(store)
    try:
        mtime = list_path(store).stat().st_mtime
        applied_at: dt.datetime | None = dt.datetime.fromtimestamp(mtime, dt.UTC)
    except OSError:
        applied_at = None
    checked_at, outcome = None, None
    try:
        doc = json.loads((store.db_path.parent / CHECKED_NAME).read_text(encoding="utf-8"))
        checked_at = dt.datetime.fromisoformat(doc["checked_at"])
        outcome = str(doc.get("outcome") or "") or None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return CountyCardsStatus(head.version, head.cards, applied_at, checked_at, outcome)


@dataclass(frozen=True)
class _Held:
    stamp: tuple[int, int]  # (mtime ns, size) of the file read
    cards: dict[str, list[str]]  # card -> [elder id, home point, home name, name, initials]
    # For the caregiver's search, built on first use: (initials, card, elder) per card.
    index: list[tuple[str, str, CountyCard]] | None = None


_cache: dict[Path, _Held] = {}


def _held(store: Store) -> _Held | None:
    """The list held, re-read when the file changes."""
    path = list_path(store)
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None
    held = _cache.get(path)
    if held is None or held.stamp != stamp:
        try:
            cards = json.loads(path.read_text(encoding="utf-8"))["cards"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("county card list unreadable: %s", exc)
            return None
        held = _Held(stamp, cards)
        _cache[path] = held
    return held


def lookup(store: Store, card_uid: str) -> CountyCard | None:
    """The visitor holding `card_uid` on the list held."""
    held = _held(store)
    row = held.cards.get(card_uid) if held else None
    return CountyCard(*row[:4]) if row else None


def lookup_elder(store: Store, elder_id: str) -> CountyCard | None:
    """The visitor with this platform elder id on the list held (a manual check-in names the
    elder, not a card); None when his cards are no longer on it."""
    for _, _, card in _search_index(store):
        if card.elder_id == elder_id:
            return card
    return None


@dataclass(frozen=True)
class VisitorMatch:
    card_uid: str
    card: CountyCard


def search(store: Store, q: str, limit: int = 20) -> list[VisitorMatch]:
    """Elders of other points on the list held, for a caregiver whose visitor forgot his card:
    by pinyin initials (the letter pad: WXY), part of the name, or the card number (4 or more
    characters, its start). One match per elder, sorted by initials then name."""
    q = q.strip()
    if not q:
        return []
    upper = q.upper()
    found: dict[str, tuple[str, VisitorMatch]] = {}
    for initials, uid, card in _search_index(store):
        hit = (
            initials.startswith(upper)
            or q in card.name
            or (len(q) >= 4 and uid.upper().startswith(upper))
        )
        if hit and card.elder_id not in found:
            found[card.elder_id] = (initials, VisitorMatch(uid, card))
    ranked = sorted(found.values(), key=lambda f: (f[0], f[1].card.name))
    return [match for _, match in ranked[:limit]]


def _initials(name: str) -> str:
    from models.roster import pinyin_initials  # pypinyin loads lazily (see there)

    return pinyin_initials(name)


def _search_index(store: Store) -> list[tuple[str, str, CountyCard]]:
    held = _held(store)
    if held is None:
        return []
    if held.index is None:
        # Once per list, not per keystroke; initials kept by the pull (a list written before
        # they were has them worked out here, once).
        index = [
            (row[4] if len(row) > 4 else _initials(row[3]), uid, CountyCard(*row[:4]))
            for uid, row in held.cards.items()
        ]
        held = _Held(held.stamp, held.cards, index)
        _cache[list_path(store)] = held
    assert held.index is not None
    return held.index
