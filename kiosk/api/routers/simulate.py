"""POST /api/simulate/tap: present a card to a simulated reader (demo and tests only).

The tap goes through the simulated reader's own thread, like a real card, so what this
exercises is the real path. It exists only while a simulated reader is configured, and answers
only requests from this machine (loopback): even with `web.host` opened to the village network,
nobody there can forge a card tap, and with it a subsidised meal.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from hardware.simulated import SimulatedReader
from kiosk.api.deps import ServicesDep

router = APIRouter(prefix="/api/simulate", tags=["simulate"])


class TapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: str = Field(min_length=1, max_length=64, description="card number as the reader sends it")
    reader: str | None = Field(default=None, description="simulated reader name; default: first")


# Peers allowed to simulate taps; "testclient" is the in-process test transport, never a peer
# address a network connection can have.
LOOPBACK = {"127.0.0.1", "::1", "testclient"}


@router.post("/tap", status_code=202)
def simulate_tap(body: TapRequest, services: ServicesDep, request: Request) -> dict[str, str]:
    peer = request.client.host if request.client else ""
    if peer not in LOOPBACK and not peer.startswith("127."):
        raise HTTPException(403, "simulated taps are accepted from this machine only")
    candidates = [
        s
        for s in services.readers.find("simulated")
        if body.reader is None or s.config.name == body.reader
    ]
    if not candidates or not isinstance(candidates[0].reader, SimulatedReader):
        raise HTTPException(404, "no simulated reader with that name is configured")
    candidates[0].reader.tap(body.uid)
    return {"reader": candidates[0].config.name, "uid": body.uid}
