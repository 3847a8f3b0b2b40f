"""GET /api/events: every check-in result as a server-sent event.

The page reconnects by itself (EventSource does, with the `retry` we send); `Last-Event-ID`
replays what it missed from the bus history, so a dropped Wi-Fi second loses nothing on screen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from kiosk.api.deps import ServicesDep
from kiosk.checkin.events import Event

router = APIRouter(prefix="/api", tags=["events"])

KEEPALIVE_S = 15.0
RETRY_MS = 2000


def _frame(event: Event) -> str:
    payload = json.dumps(event.data, ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {payload}\n\n"


@router.get("/events")
async def stream_events(
    request: Request,
    services: ServicesDep,
    last_event_id: str | None = Header(default=None),
) -> StreamingResponse:
    bus = services.bus
    queue = bus.subscribe()
    try:
        resume_from = int(last_event_id) if last_event_id else None
    except ValueError:
        resume_from = None
    missed = bus.since(resume_from) if resume_from is not None else []

    async def frames() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            sent = resume_from or 0
            for event in missed:
                sent = event.id
                yield _frame(event)
            while not services.stopping.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if event.id > sent:  # skip what the replay already sent
                    sent = event.id
                    yield _frame(event)
        finally:
            bus.unsubscribe(queue)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
