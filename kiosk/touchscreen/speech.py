"""What the speaker says for each check-in result (the words are in hardware/speaker.py).

`start_speech` is called by the daemon: it builds the Speaker from `speech:` in config.yaml and
listens on the event bus. The listener only queues (the bus calls it in the check-in thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hardware.speaker import QuietHours, Speaker
from kiosk.checkin.events import Event

if TYPE_CHECKING:  # the services hold the speaker: no import at run time, no cycle
    from kiosk.runtime.services import KioskServices

log = logging.getLogger(__name__)

REFUSAL_PHRASES = {
    "unknown_card": "unknown_card",
    "invalid_card": "invalid_card",
    "outside_hours": "outside_hours",
    "face_unknown": "use_card",
    "face_ambiguous": "use_card",
    "liveness_failed": "use_card",
    "face_required": "face_camera",
    "storage_full": "fault",
    "storage_error": "fault",
}


def prompt_for(data: dict[str, Any]) -> tuple[str, str | None] | None:
    """(phrase key, name to say first) for a check-in event, or None to stay silent."""
    outcome, name = data.get("outcome"), data.get("elder_name")
    if outcome == "accepted":
        return ("welcome_cleaning" if data.get("service") == "cleaning" else "welcome_meal", name)
    if outcome == "duplicate":
        return f"dup_{data.get('slot') or 'lunch'}", name
    if outcome == "refused":
        return REFUSAL_PHRASES.get(data.get("refusal") or "", "see_staff"), name
    return None


def build_speaker(services: KioskServices) -> Speaker:
    cfg = services.config.speech
    quiet = None
    if cfg.quiet_start is not None and cfg.quiet_end is not None:
        quiet = QuietHours(cfg.quiet_start, cfg.quiet_end, cfg.quiet_volume)
    return Speaker(
        services.data_dir / "speech",
        volume=cfg.volume,
        quiet=quiet,
        voice=cfg.voice,
        rate=cfg.rate,
        clock=services.now,
    )


def listener(speaker: Speaker) -> Callable[[Event], None]:
    def on_event(event: Event) -> None:
        if event.kind != "checkin":
            return
        prompt = prompt_for(event.data)
        if prompt is not None:
            speaker.say(*prompt)

    return on_event


def start_speech(services: KioskServices, stop: threading.Event) -> Speaker | None:
    if not services.config.speech.enabled:
        return None
    speaker = build_speaker(services)
    services.bus.add_listener(listener(speaker))
    speaker.start(stop)
    log.info("speaker: %s", speaker.status())
    return speaker
