"""GET /api/pinyin?s=wang: candidate characters for the on-screen pinyin keyboard (session)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from kiosk.api.pages_common import CaregiverDep
from kiosk.touchscreen.pinyin_input import candidates

router = APIRouter(tags=["touch input"])


@router.get("/api/pinyin")
def pinyin_candidates(
    caregiver: CaregiverDep, s: str = Query(default="", max_length=6)
) -> dict[str, list[str]]:
    return {"candidates": candidates(s)}
