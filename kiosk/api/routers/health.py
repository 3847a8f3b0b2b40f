"""GET /api/health: database, readers, camera, upload queue."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kiosk.api.deps import ServicesDep

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def get_health(services: ServicesDep) -> JSONResponse:
    health = services.health()
    # 503 only when records cannot be stored; a missing reader is "degraded", still serving.
    return JSONResponse(health.as_json(), status_code=503 if health.status == "error" else 200)
