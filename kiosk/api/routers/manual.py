"""Manual check-in by a caregiver: GET/POST /manual (page), /api/elders, /api/manual-checkin.

For a forgotten card, a face that is not recognised, or a bedridden elder whose meal is carried
to him (送餐). Needs the caregiver session; recorded as method `manual` with her id and the
reason, through the same CheckinService rules as a card.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import or_, select

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, render
from kiosk.checkin.rules import CheckinRequest, CheckinResult, Method
from kiosk.touchscreen.masking import mask_id_number
from models.tables import Elder

router = APIRouter(tags=["manual"])

REASONS = {
    "forgot_card": "忘带卡",
    "card_lost": "卡丢失或损坏",
    "face_failed": "刷脸认不出",
    "delivered": "送餐上门（卧床）",
    "device_fault": "设备故障",
    "other": "其他",
}
MAX_RESULTS = 20


def search_elders(services: Any, q: str) -> list[dict[str, Any]]:
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


def _check_in(services: Any, caregiver_id: str, elder_id: str, reason: str) -> CheckinResult:
    if reason not in REASONS:
        raise HTTPException(422, "choose a reason from the list")
    if not elder_id:
        raise HTTPException(422, "choose an elder")
    return services.checkin.check_in(
        CheckinRequest(Method.MANUAL, elder_id=elder_id, caregiver_id=caregiver_id, reason=reason)
    )


@router.get("/manual", response_class=HTMLResponse)
def manual_page(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, q: str = ""
) -> HTMLResponse:
    return render(
        request,
        "manual.html",
        {"q": q, "elders": search_elders(services, q), "reasons": REASONS, "page": "manual"},
    )


@router.post("/manual", response_class=HTMLResponse)
def manual_submit(
    request: Request, services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> HTMLResponse:
    result = _check_in(
        services, caregiver.caregiver_id, form.get("elder_id", ""), form.get("reason", "")
    )
    return render(
        request,
        "manual.html",
        {"q": "", "elders": [], "reasons": REASONS, "result": result, "page": "manual"},
        status_code=200,
    )


@router.get("/api/elders")
def api_search(
    services: ServicesDep, caregiver: CaregiverDep, q: str = Query(min_length=1, max_length=32)
) -> list[dict[str, Any]]:
    return search_elders(services, q)


@router.post("/api/manual-checkin")
def api_manual(services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm) -> JSONResponse:
    result = _check_in(
        services, caregiver.caregiver_id, form.get("elder_id", ""), form.get("reason", "")
    )
    return JSONResponse(result.as_event())
