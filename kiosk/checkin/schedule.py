"""Which service slot is open at a given moment, in the site's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kiosk.config import KioskConfig, SlotConfig

SLOT_LABELS = {"breakfast": "早餐", "lunch": "午餐", "dinner": "晚餐", "day": "全天"}
SERVICE_LABELS = {"meal": "助餐", "cleaning": "助洁"}


@dataclass(frozen=True)
class SlotWindow:
    service: str
    slot: str
    service_date: dt.date
    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        """E.g. 今日午餐, as the screen says it."""
        name = SLOT_LABELS.get(self.slot, self.slot)
        return f"今日{name}" if self.service == "meal" else f"今日{SERVICE_LABELS['cleaning']}"

    @property
    def hours(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


def _window(config: KioskConfig, service: str, slot: SlotConfig, day: dt.date) -> SlotWindow:
    tz = config.site.tz
    return SlotWindow(
        service=service,
        slot=slot.name,
        service_date=day,
        start=dt.datetime.combine(day, slot.start, tzinfo=tz),
        end=dt.datetime.combine(day, slot.end, tzinfo=tz),
    )


def open_slot(config: KioskConfig, service: str, now: dt.datetime) -> SlotWindow | None:
    """The slot of `service` open at `now` (start inclusive, end exclusive), if any."""
    local = now.astimezone(config.site.tz)
    for slot in config.slots_for(service):
        if slot.start <= local.time() < slot.end:
            return _window(config, service, slot, local.date())
    return None


def current_or_next(config: KioskConfig, service: str, now: dt.datetime) -> SlotWindow | None:
    """The open slot, else the next one today, else the last one today (for the screen)."""
    local = now.astimezone(config.site.tz)
    windows = [_window(config, service, s, local.date()) for s in config.slots_for(service)]
    windows.sort(key=lambda w: w.start)
    for window in windows:
        if local < window.end:
            return window
    return windows[-1] if windows else None
