"""Elders and time for the in-process tests: a roster row factory and a settable clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from models.roster import RosterRow

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


class Clock:
    """A settable clock: the rules depend on the time of day."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, hhmm: str, day: int = 2) -> None:
        hours, minutes = map(int, hhmm.split(":"))
        self.now = dt.datetime(2026, 12, day, hours, minutes, tzinfo=TZ)


def elder_row(n: int, **overrides: object) -> RosterRow:
    """Elder n: id E000n, card A000000n (hex), active, agreement signed."""
    fields: dict[str, object] = {
        "elder_id": f"E{n:04d}",
        "name": f"老人{n}",
        "id_number_masked": "141129********0000",
        "card_uid": f"{0xA0000000 + n:08X}",
        "group": "一组",
        "contact_phone": "13800000000",
        "status": "active",
        "agreement_signed": True,
    }
    fields.update(overrides)
    return RosterRow(**fields)  # type: ignore[arg-type]  # the overrides are the caller's types
