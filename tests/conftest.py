"""Fixtures shared by the whole suite: a config, a migrated store, services with a fixed clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware.simulated import SimulatedReader
from kiosk.config import KioskConfig, ReaderConfig, parse_config
from kiosk.ops.storage import open_store
from kiosk.runtime.daemon import build_services
from kiosk.runtime.services import KioskServices
from models.db import Store
from models.roster import RosterRow, apply_rows

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parent.parent

BASE_CONFIG = """\
site:
  point_id: ZY-TEST-001
  name: 测试助老小院
device:
  device_id: test-terminal
meal:
  slots:
    - {name: breakfast, start: "07:00", end: "08:30"}
    - {name: lunch, start: "11:00", end: "13:30"}
cleaning:
  enabled: true
  slots:
    - {name: day, start: "08:00", end: "18:00"}
readers:
  - {kind: simulated, name: desk}
"""


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
    return RosterRow(**fields)  # type: ignore[arg-type]


@pytest.fixture
def config() -> KioskConfig:
    return parse_config(BASE_CONFIG)


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 12, 2, 11, 30, tzinfo=TZ))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def services(
    config: KioskConfig, store: Store, clock: Clock, tmp_path: Path
) -> Iterator[KioskServices]:
    reader = SimulatedReader("desk")
    services = build_services(
        config,
        tmp_path / "data",
        readers=[(ReaderConfig(kind="simulated", name="desk"), reader)],
        store=store,
        clock=clock,
    )
    apply_rows(
        store,
        [
            elder_row(1, name="王秀英"),
            elder_row(2, name="李建国"),
            elder_row(3, name="张德明", status="suspended"),
            elder_row(4, name="刘凤英", agreement_signed=False),
            elder_row(5, name="陈保国", card_uid=None),
        ],
        clock(),
        source="test",
    )
    yield services
