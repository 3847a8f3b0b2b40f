"""GET /api/elders?q=: find elders by name or pinyin initials (caregiver session).

`search_elders` also fills the elder pickers of manual check-in and enrolment.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.masking import mask_id_number
from models.tables import Elder

router = APIRouter(prefix="/api", tags=["elders"])

MAX_RESULTS = 20


def search_elders(services: KioskServices, q: str) -> list[dict[str, Any]]:
    q = q.strip()
    if not q:
        return []
    like = q.replace("\\", "").replace("%", "").replace("_", "")
    with services.store.read() as s:
        rows = s.scalars(
            select(Elder)
            .where(
                or_(
                    Elder.name.contains(like),
                    Elder.pinyin_initials.startswith(like.upper()),
                )
            )
            .order_by(Elder.pinyin_initials, Elder.name)
            .limit(MAX_RESULTS)
        ).all()
    return [
        {
            "elder_id": e.elder_id,
            "name": e.name,
            "id_number": mask_id_number(e.id_number_masked),
            "group": e.group_name,
            "status": e.status,
        }
        for e in rows
    ]


@router.get("/elders")
def api_search(
    services: ServicesDep, caregiver: CaregiverDep, q: str = Query(min_length=1, max_length=32)
) -> list[dict[str, Any]]:
    return search_elders(services, q)
