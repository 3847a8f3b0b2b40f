"""GET /api/health: database, readers, camera, upload queue."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kiosk.api.deps import ServicesDep

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def get_health(services: ServicesDep) -> JSONResponse:
    body: dict[str, Any] = services.health()
    # 503 only when records cannot be stored; a missing reader is "degraded", still serving.
    return JSONResponse(body, status_code=503 if body["status"] == "error" else 200)
