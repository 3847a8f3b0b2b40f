"""POST /api/simulate/tap: present a card to a simulated reader (demo and tests only).

The tap goes through the simulated reader's own thread, like a real card, so what this
exercises is the real path. It exists only while a simulated reader is configured.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from hardware.simulated import SimulatedReader
from kiosk.api.deps import ServicesDep

router = APIRouter(prefix="/api/simulate", tags=["simulate"])


class TapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: str = Field(min_length=1, max_length=64, description="card number as the reader sends it")
    reader: str | None = Field(default=None, description="simulated reader name; default: first")


@router.post("/tap", status_code=202)
def simulate_tap(body: TapRequest, services: ServicesDep) -> dict[str, str]:
    candidates = [
        s
        for s in services.readers.find("simulated")
        if body.reader is None or s.config.name == body.reader
    ]
    if not candidates or not isinstance(candidates[0].reader, SimulatedReader):
        raise HTTPException(404, "no simulated reader with that name is configured")
    candidates[0].reader.tap(body.uid)
    return {"reader": candidates[0].config.name, "uid": body.uid}
