"""GET /metrics in the Prometheus text format."""

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from kiosk.api.deps import ServicesDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse)
def get_metrics(request: Request, services: ServicesDep) -> PlainTextResponse:
    text = request.app.state.metrics.render(services)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
