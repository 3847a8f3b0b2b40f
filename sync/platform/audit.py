"""The platform's audit trail: one row per administrative act, never edited or deleted."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from sync.platform.deps import Principal, stamp
from sync.platform.state import PlatformState
from sync.platform.tables import AuditEvent

log = logging.getLogger(__name__)


def audit(
    session: Session,
    state: PlatformState,
    who: Principal | str,
    action: str,
    *,
    point_id: str | None = None,
    device_id: str | None = None,
    **detail: Any,
) -> None:
    if isinstance(who, Principal):
        actor, role = who.name, who.role
    else:  # "device:<id>" for a terminal's own enrolment, else the platform itself
        actor, role = who, "device" if who.startswith("device:") else "system"
    log.info("audit: %s (%s) %s point=%s device=%s", actor, role, action, point_id, device_id)
    session.add(
        AuditEvent(
            at=stamp(state.clock()),
            actor=actor,
            role=role,
            action=action,
            point_id=point_id,
            device_id=device_id,
            detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        )
    )
