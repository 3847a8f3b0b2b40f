"""Binding a card to an elder from the touchscreen (caregiver session; CSRF on every POST).

GET  /api/card-binding          the binding window: armed? for whom? the last result
POST /api/card-binding          elder_id: the next tap of an unbound card binds it
POST /api/card-binding/cancel   close the window
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from kiosk.api.deps import ServicesDep
from kiosk.api.pages_common import CaregiverDep, CheckedForm
from kiosk.runtime.services import KioskServices

router = APIRouter(prefix="/api/card-binding", tags=["card binding"])


def _binding_state(services: KioskServices) -> dict[str, Any]:
    now = services.now()
    binding = services.card_binding
    pending = binding.pending(now)
    last = binding.last.as_event() if binding.last is not None else None
    if pending is None:
        return {"armed": False, "last": last}
    return {
        "armed": True,
        "elder_id": pending.elder_id,
        "elder_name": pending.elder_name,
        "seconds_left": max(0, int((pending.expires_at - now).total_seconds())),
        "last": last,
    }


@router.get("")
def card_binding_state(services: ServicesDep, caregiver: CaregiverDep) -> dict[str, Any]:
    return _binding_state(services)


@router.post("")
def card_binding_arm(
    services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> dict[str, Any]:
    pending = services.card_binding.arm(
        services.store, form.get("elder_id", ""), caregiver.caregiver_id, services.now()
    )
    if pending is None:
        raise HTTPException(422, "花名册中没有这位老人")
    return _binding_state(services)


@router.post("/cancel")
def card_binding_cancel(
    services: ServicesDep, caregiver: CaregiverDep, form: CheckedForm
) -> dict[str, Any]:
    services.card_binding.cancel()
    return _binding_state(services)
