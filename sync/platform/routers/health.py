"""GET /v1/health: liveness, the server's time and the roster-signing public key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sync.platform.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/v1/health")
def health(state: StateDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "server_time": state.clock().isoformat(),
        "public_key": state.public_key_b64,
    }
