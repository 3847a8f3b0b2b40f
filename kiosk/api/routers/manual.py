"""Manual check-in by a caregiver: GET/POST /manual (page) and POST /api/manual-checkin.

For a forgotten card, a face that is not recognised, or a bedridden elder whose meal is carried
to him (送餐). Needs the caregiver session; recorded as method `manual` with her id and the
reason, through the same CheckinService rules as a card.

Where visitors are accepted (roaming.accept_visitors), a search also lists elders of other
points from the signed county card list (外点老人, by pinyin initials, name or card number):
one who forgot his card is recorded as a manual meal with the flag `visitor`, which the county
settles as a manual-check-in exception like any other.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm, render
from kiosk.api.routers.elders import groups, pick_elders
from kiosk.checkin.rules import CheckinRequest, CheckinResult, Method
from kiosk.runtime.services import KioskServices
from sync.county_cards import search as search_county_list

router = APIRouter(tags=["manual"])

REASONS = {
    "forgot_card": "忘带卡",
    "card_lost": "卡丢失或损坏",
    "face_failed": "刷脸认不出",
    "delivered": "送餐上门（卧床）",
    "device_fault": "设备故障",
    "other": "其他",
}


def _check_in(
    services: KioskServices, caregiver_id: str, elder_id: str, reason: str
) -> CheckinResult:
    if reason not in REASONS:
        raise HTTPException(422, "choose a reason from the list")
    if not elder_id:
        raise HTTPException(422, "choose an elder")
    return services.checkin.check_in(
        CheckinRequest(Method.MANUAL, elder_id=elder_id, caregiver_id=caregiver_id, reason=reason)
    )


def _visitors(
    services: KioskServices, q: str, elders: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Elders of other points matching the search, where this point accepts visitors."""
    if not services.config.roaming.accept_visitors or not q.strip():
        return []
    ours = {e["elder_id"] for e in elders if e["status"] != "visitor"}
    return [
        {
            "elder_id": m.card.elder_id,
            "name": m.card.name,
            "home": m.card.home_name,
            "card_tail": m.card_uid[-4:],
        }
        for m in search_county_list(services.store, q)
        if m.card.elder_id not in ours
    ]


@router.get("/manual", response_class=HTMLResponse)
def manual_page(
    request: Request,
    services: ServicesDep,
    caregiver: CaregiverDep,
    q: str = Query(default="", max_length=32),
    group: str = Query(default="", max_length=64),
) -> HTMLResponse:
    listing, elders = pick_elders(services, q, group)
    return render(
        request,
        "manual.html",
        {
            "q": q,
            "group": group,
            "groups": groups(services),
            "listing": listing,
            "elders": elders,
            "visitors": _visitors(services, q, elders),
            "reasons": REASONS,
            "page": "manual",
        },
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
        {
            "q": "",
            "groups": groups(services),
            "elders": [],
            "visitors": [],
            "reasons": REASONS,
            "result": result,
            "page": "manual",
        },
        status_code=200,
    )


@router.post("/api/manual-checkin")
def api_manual(services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm) -> JSONResponse:
    result = _check_in(
        services, caregiver.caregiver_id, form.get("elder_id", ""), form.get("reason", "")
    )
    return JSONResponse(result.as_event())
