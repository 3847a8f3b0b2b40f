"""GET /api/headcount: the count for the current slot and the latest check-ins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kiosk.api.deps import ServicesDep
from kiosk.checkin.headcount import Headcount, headcount

router = APIRouter(prefix="/api", tags=["headcount"])


def headcount_json(hc: Headcount) -> dict[str, Any]:
    w = hc.window
    return {
        "service": w.service if w else None,
        "slot": w.slot if w else None,
        "label": w.label if w else None,
        "hours": w.hours if w else None,
        "service_date": w.service_date.isoformat() if w else None,
        "open": hc.is_open,
        "served": hc.served,
        # 本点 N + 外点 M: this point's elders and visitors of other points (roaming).
        "local": hc.local,
        "visitors": hc.visitors,
        "roaming": hc.roaming,
        "recent": [
            {
                "elder_id": s.elder_id,
                "name": s.name,
                "method": s.method,
                "method_label": s.method_label,
                "at": s.at.isoformat(),
                "visitor": s.visitor,
            }
            for s in hc.recent
        ],
    }


@router.get("/headcount")
def get_headcount(services: ServicesDep) -> dict[str, Any]:
    return headcount_json(headcount(services.config, services.store, services.now()))
