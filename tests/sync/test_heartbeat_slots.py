"""The point's serving windows ride along with the heartbeat (the county's silent-point alert
judges the point by them); an older platform body without them is still a heartbeat."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from sync.heartbeat import HeartbeatExtras, build_heartbeat
from sync.wire import ServingSlot
from tests.support.outbox import Kiosk
from tests.support.platform import Platform
from tests.support.roster import TZ

NOW = dt.datetime(2026, 12, 2, 13, 0, tzinfo=TZ)
SLOTS = [("meal", "lunch", dt.time(12, 30), dt.time(14, 0)),
         ("cleaning", "day", dt.time(8), dt.time(18))]  # fmt: skip


def test_serving_slots_reach_the_platform(platform: Platform, kiosk: Kiosk) -> None:
    client = kiosk.client(platform.url)
    hb = build_heartbeat(kiosk.store, kiosk.device_id, NOW, software_version="0.1.0",
                         extras=lambda: HeartbeatExtras(serving_slots=SLOTS))  # fmt: skip
    client.heartbeat(hb)
    engine = create_engine(platform.db_url)
    try:
        with engine.connect() as conn:
            body = conn.execute(
                text("SELECT body FROM heartbeat WHERE device_id = :d"), {"d": kiosk.device_id}
            ).scalar_one()
    finally:
        engine.dispose()
    stored = json.loads(body)["serving_slots"]
    assert stored == [
        {"service": "meal", "slot": "lunch", "start": "12:30:00", "end": "14:00:00"},
        {"service": "cleaning", "slot": "day", "start": "08:00:00", "end": "18:00:00"},
    ]


def test_a_slot_ending_before_it_starts_is_not_sent() -> None:
    with pytest.raises(ValidationError, match="must be after start"):
        ServingSlot.model_validate(
            {"service": "meal", "slot": "lunch", "start": "14:00", "end": "12:30"}
        )
