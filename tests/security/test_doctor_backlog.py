"""`kiosk doctor`: the backlog line with unsent records (it used to raise TypeError), and the
evidence check (chain, signatures, outbox) that tells a technician the local records are
inconsistent."""

from __future__ import annotations

import datetime as dt

from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.ops.doctor import Level, check_outbox
from kiosk.runtime.services import KioskServices
from tests.support.roster import TZ


def test_backlog_line_with_unsent_records_does_not_crash(services: KioskServices) -> None:
    result = services.checkin.check_in(CheckinRequest(Method.CARD, card_uid="A0000001"))
    assert result.accepted
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=TZ)
    check = check_outbox(services.store, now)
    assert check.name == "unsent records"
    assert check.detail.startswith("1, oldest 1 d 0 h"), check.detail
    assert check.level is Level.WARN  # more than a day old


def test_backlog_line_without_unsent_records(services: KioskServices) -> None:
    check = check_outbox(services.store, dt.datetime(2026, 12, 3, 12, 0, tzinfo=TZ))
    assert (check.level, check.detail) == (Level.OK, "none")
