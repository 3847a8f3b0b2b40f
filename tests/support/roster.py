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


# GB 11643 written out here rather than imported from kiosk.ops.roster_import, so the tests of
# the import's check-digit validation have an independent oracle.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(birth: str, serial: str = "123") -> str:
    """A valid 18-digit resident ID number (GB 11643 check digit) for a birth date YYYYMMDD."""
    body = f"141129{birth}{serial}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
