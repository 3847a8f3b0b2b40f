"""GET /api/elders?q=: find elders by name or pinyin initials (caregiver session).

`search_elders` and `pick_elders` also fill the elder pickers of manual check-in and enrolment,
which work by touch alone: a pinyin-initial letter pad, the 村民小组 as buttons, and with
nothing chosen, today's regular diners who have not come yet first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.masking import mask_id_number
from kiosk.touchscreen.missing import missing_diners
from models.tables import Elder

router = APIRouter(prefix="/api", tags=["elders"])

MAX_RESULTS = 20


def _row(e: Elder) -> dict[str, Any]:
    return {
        "elder_id": e.elder_id,
        "name": e.name,
        "id_number": mask_id_number(e.id_number_masked),
        "group": e.group_name,
        "status": e.status,
    }


NUMERALS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}


def _group_order(name: str) -> tuple[int, str]:
    """一组, 二组, ... 十组 in counting order (text order would put 三组 before 二组)."""
    return (NUMERALS.get(name[:1], 99), name)


def groups(services: KioskServices) -> list[str]:
    with services.store.read() as s:
        found = s.scalars(select(Elder.group_name).distinct())
        return sorted((g for g in found if g), key=_group_order)


def pick_elders(services: KioskServices, q: str, group: str) -> tuple[str, list[dict[str, Any]]]:
    """(what the list shows, the elders): a search, a group, or who has not come yet."""
    if q.strip():
        return f"“{q.strip()}”", search_elders(services, q)
    with services.store.read() as s:
        if group:
            rows = s.scalars(
                select(Elder).where(Elder.group_name == group).order_by(Elder.pinyin_initials)
            ).all()
            return group, [_row(e) for e in rows]
    report = missing_diners(services.config, services.store, services.now())
    ids = [m.elder_id for m in report.missing][:MAX_RESULTS]
    with services.store.read() as s:
        found = {e.elder_id: e for e in s.scalars(select(Elder).where(Elder.elder_id.in_(ids)))}
    return "今天还没来的常来老人", [_row(found[i]) for i in ids if i in found]


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
    return [_row(e) for e in rows]


@router.get("/elders")
def api_search(
    services: ServicesDep, caregiver: CaregiverDep, q: str = Query(min_length=1, max_length=32)
) -> list[dict[str, Any]]:
    return search_elders(services, q)
