"""Rosters: served to devices (signed, incremental by version), published by an operator."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import select

from sync.platform.audit import audit
from sync.platform.body import ROSTER_CAP, body_schema, read_model
from sync.platform.deps import DeviceDep, OperatorDep, StateDep, point_in_scope
from sync.platform.ingest import MAX_SEQ
from sync.platform.tables import RosterEntry, RosterVersion
from sync.wire import (
    RosterElder,
    RosterPayload,
    RosterPublish,
    RosterPublished,
    SignedRoster,
    b64encode,
    roster_message,
)

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/v1/roster", response_model=SignedRoster, responses={304: {}}, tags=["device"])
def roster(
    device: DeviceDep,
    state: StateDep,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    with state.sessions() as session:
        current = session.get(RosterVersion, device.point_id)
        version = current.version if current else 0
        etag = f'"{version}"'
        if version <= since or (if_none_match and if_none_match.strip() == etag):
            return Response(status_code=304, headers={"ETag": etag})
        entries = session.scalars(
            select(RosterEntry)
            .where(RosterEntry.point_id == device.point_id, RosterEntry.version > since)
            .order_by(RosterEntry.elder_id)
        ).all()
        elders = [_roster_elder(e) for e in entries]
    payload = RosterPayload(
        point_id=device.point_id,
        version=version,
        since=since,
        issued_at=state.clock(),
        elders=elders,
    ).model_dump_json()
    signature = b64encode(state.platform_key.sign(roster_message(payload)))
    body = SignedRoster(payload=payload, signature=signature).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.post(
    "/v1/admin/roster",
    response_model=RosterPublished,
    openapi_extra=body_schema(RosterPublish),
    tags=["operator"],
)
async def publish_roster(request: Request, who: OperatorDep, state: StateDep) -> RosterPublished:
    """Upsert elders of one meal point of the operator's township; bumps the version."""
    pub = await read_model(request, RosterPublish, ROSTER_CAP)
    point_in_scope(state, who, pub.point_id)
    with state.transaction() as session:
        current = session.get(RosterVersion, pub.point_id, with_for_update=True)
        if current is None:
            current = RosterVersion(point_id=pub.point_id, version=0)
            session.add(current)
        current.version += 1
        for elder in pub.elders:
            row = session.get(RosterEntry, (pub.point_id, elder.elder_id))
            if row is None:
                row = RosterEntry(point_id=pub.point_id, elder_id=elder.elder_id)
                session.add(row)
            row.name = elder.name
            row.id_number_masked = elder.id_number_masked
            row.card_uid = elder.card_uid
            row.group_name = elder.group
            row.contact_phone = elder.contact_phone
            row.status = elder.status
            row.agreement_signed = elder.agreement_signed
            row.version = current.version
        version = current.version
        audit(
            session, state, who, "publish_roster", point_id=pub.point_id,
            version=version, elders=len(pub.elders),
        )  # fmt: skip
    log.info("roster of %s now at version %d", pub.point_id, version)
    return RosterPublished(point_id=pub.point_id, version=version)


def _roster_elder(e: RosterEntry) -> RosterElder:
    return RosterElder(
        elder_id=e.elder_id,
        name=e.name,
        id_number_masked=e.id_number_masked,
        card_uid=e.card_uid,
        group=e.group_name,
        contact_phone=e.contact_phone,
        # A plain string column; it holds only statuses RosterElder validated at publication.
        status=e.status,  # type: ignore[arg-type]
        agreement_signed=e.agreement_signed,
    )
