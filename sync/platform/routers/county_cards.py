"""The county card list for roaming elders (全城通): every active card of the county, signed.

Built from the published rosters of all points (one platform is one county). Compact: one
[card, elder id, home point id, name] array per card, sorted by card; measured at 20,000 elders
as 1.17 MB of JSON, 262 KB gzip (`python -m bench.card_list`, docs/scale.md).

The answer carries a strong ETag (`sync.wire.county_cards_etag`: the version and a digest of
the signature). A kiosk that sends the tag of the list it holds as If-None-Match gets 304 with
no body when nothing changed: most pulls (every 15 minutes, every kiosk) then move no list.
For the tag to be stable the payload is a function of the content: `issued_at` is the time of
the latest roster publication (its audit event), not the time of the request. Device auth runs
first (a dependency): no caller without a valid device token learns even that nothing changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.platform.deps import DeviceDep, StateDep
from sync.platform.tables import AuditEvent, MealPoint, RosterEntry, RosterVersion
from sync.wire import (
    CountyCardsPayload,
    SignedRoster,
    b64encode,
    county_cards_etag,
    county_cards_message,
    etag_matches,
)

log = logging.getLogger(__name__)
router = APIRouter()


def _version(session: Session) -> int:
    # Every publish bumps one point's roster version by one, so the sum only ever rises and
    # names this content: no counter of its own to keep.
    return int(session.scalar(select(func.coalesce(func.sum(RosterVersion.version), 0))) or 0)


# A county whose rosters were never published through the platform (no audit event).
NEVER_PUBLISHED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _published_at(session: Session) -> dt.datetime:
    """When the latest roster was published: the list's `issued_at`, stable between publishes
    (both publish routes audit `publish_roster` in the publishing transaction)."""
    at = session.scalar(
        select(func.max(AuditEvent.at)).where(AuditEvent.action == "publish_roster")
    )
    return dt.datetime.fromisoformat(at) if at else NEVER_PUBLISHED


def _cards(session: Session) -> list[tuple[str, str, str, str]]:
    rows = session.execute(
        select(RosterEntry.card_uid, RosterEntry.elder_id, RosterEntry.point_id, RosterEntry.name)
        .where(
            RosterEntry.status == "active",
            RosterEntry.card_uid.is_not(None),
            RosterEntry.card_uid != "",
        )
        .order_by(RosterEntry.card_uid, RosterEntry.point_id)
    ).all()
    return [(str(c), e, p, n) for c, e, p, n in rows]


@router.get("/v1/county-cards", response_model=SignedRoster, responses={304: {}}, tags=["device"])
def county_cards(
    device: DeviceDep,
    state: StateDep,
    if_none_match: Annotated[str | None, Header(max_length=512)] = None,
) -> Response:
    with state.sessions() as session:
        # The version is read before and after the cards: equal, no publish committed in
        # between (read committed), so the cards are exactly that version's. A list labelled
        # with a version whose cards it lacks would let a replay of it pass as current.
        for _ in range(5):
            version = _version(session)
            cards = _cards(session)
            points = {p: n for p, n in session.execute(select(MealPoint.point_id, MealPoint.name))}
            published_at = _published_at(session)
            if _version(session) == version:
                break
        else:
            raise HTTPException(503, "rosters are being published; try again")
    payload = CountyCardsPayload(
        version=version, issued_at=published_at, points=points, cards=cards
    ).model_dump_json()
    signature = b64encode(state.platform_key.sign(county_cards_message(payload)))
    etag = county_cards_etag(version, signature)
    if etag_matches(if_none_match, etag):
        log.info("county card list v%d unchanged for %s (304)", version, device.device_id)
        return Response(status_code=304, headers={"ETag": etag})
    log.info("county card list v%d for %s: %d cards", version, device.device_id, len(cards))
    body = SignedRoster(payload=payload, signature=signature).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": etag})
