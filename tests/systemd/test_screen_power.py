"""When the touchscreen is lit: serving windows widened by the lead and the tail."""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.config import parse_config
from kiosk.touchscreen.screen_power import screen_should_be_on
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ


def at(hhmm: str, day: int = 2) -> dt.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime(2026, 12, day, hours, minutes, tzinfo=TZ)


@pytest.mark.parametrize(
    ("hhmm", "lit"),
    [("03:00", False), ("06:44", False), ("06:46", True), ("08:40", True), ("08:46", False),
     ("10:44", False), ("10:45", True), ("13:44", True), ("13:45", False), ("23:00", False)],
)  # fmt: skip
def test_meal_slots_with_lead_and_tail(hhmm: str, lit: bool) -> None:
    # BASE_CONFIG: breakfast 07:00-08:30, lunch 11:00-13:30; cleaning on, 08:00-18:00.
    config = parse_config(BASE_CONFIG.replace("enabled: true", "enabled: false"))
    assert screen_should_be_on(config, at(hhmm)) is lit


def test_cleaning_window_keeps_the_screen_on() -> None:
    config = parse_config(BASE_CONFIG)
    assert screen_should_be_on(config, at("15:00"))
    assert not screen_should_be_on(config, at("18:20"))


def test_a_tail_past_midnight_counts_for_the_next_day() -> None:
    config = parse_config(
        BASE_CONFIG.replace('{name: lunch, start: "11:00", end: "13:30"}',
                            '{name: dinner, start: "22:00", end: "23:55"}')
        .replace("enabled: true", "enabled: false")
    )  # fmt: skip
    assert screen_should_be_on(config, at("00:05", day=3))
    assert not screen_should_be_on(config, at("00:15", day=3))


def test_a_time_in_another_zone_is_converted() -> None:
    config = parse_config(BASE_CONFIG.replace("enabled: true", "enabled: false"))
    # 03:00 UTC is 11:00 in Shanghai: lunch.
    assert screen_should_be_on(config, dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC))
