"""Issue 14.1: the silent-point alert judges a point by its own serving windows (the slots its
terminal reports in the heartbeat), and by the county default only where none is known; the
alert says which hours it used. Heartbeat slots are validated on arrival."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.orm import sessionmaker

from sync.platform.console import oversight
from tests.security.platform_env import County
from tests.sync.console.county import SITE, point, terminal

pytestmark = pytest.mark.slow

LATE_LUNCH = [{"service": "meal", "slot": "lunch", "start": "12:30", "end": "14:00"}]


def silent_alerts(county: County, now: dt.datetime, points: list[str]) -> dict[str, dict[str, str]]:
    """Run the sweep at `now`; point -> {detail: evidence} of its silent_point alerts."""
    engine = create_engine(county.platform.db_url)
    try:
        oversight.sweep(sessionmaker(engine), now, days=[])
        with engine.connect() as conn:
            query = text(
                "SELECT point_id, detail, evidence FROM alert "
                "WHERE kind = 'silent_point' AND point_id IN :ps"
            ).bindparams(bindparam("ps", expanding=True))
            rows = conn.execute(query, {"ps": points}).all()
    finally:
        engine.dispose()
    out: dict[str, dict[str, str]] = {p: {} for p in points}
    for point_id, detail, evidence in rows:
        out[point_id][detail] = evidence
    return out


def test_a_late_lunch_point_is_judged_by_its_own_slot(county: County) -> None:
    late, plain = point(county), point(county)
    t_late, t_plain = terminal(county, late), terminal(county, plain)
    t_late.heartbeat(serving_slots=LATE_LUNCH)
    t_plain.heartbeat()  # an older kiosk: no slots reported
    # A day ahead, so the heartbeats just sent are hours old (silent).
    day = dt.datetime.now(SITE).date() + dt.timedelta(days=3)

    # 11:45: inside the county default (11:00-13:30), before the late point's 12:30 lunch.
    at_default = silent_alerts(county, dt.datetime.combine(day, dt.time(11, 45), SITE),
                               [late, plain])  # fmt: skip
    assert at_default[late] == {}, at_default[late]
    (detail,) = at_default[plain]
    assert detail == f"{day}: no heartbeat during serving hours (11:00-13:30, county default)"
    evidence = json.loads(at_default[plain][detail])
    assert evidence["hours_from"] == "county_default" and evidence["serving_hours"] == "11:00-13:30"

    # 13:45: past the county default's end, inside the late point's own lunch slot.
    in_slot = silent_alerts(county, dt.datetime.combine(day, dt.time(13, 45), SITE),
                            [late, plain])  # fmt: skip
    (detail,) = in_slot[late]
    assert detail == f"{day}: no heartbeat during serving hours (12:30-14:00, slot meal/lunch)"
    evidence = json.loads(in_slot[late][detail])
    assert evidence["hours_from"] == "point" and evidence["slot"] == "meal/lunch"
    assert evidence["devices"] == [t_late.device_id]
    assert len(in_slot[plain]) == 1  # nothing new for the default point after 13:30


def test_a_point_heard_inside_its_slot_is_not_silent(county: County) -> None:
    p = point(county)
    t = terminal(county, p)
    now = dt.datetime.now(SITE)
    start = (now - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    if end <= start:  # around midnight: the window would wrap; the rule is shown by the other
        pytest.skip("serving window across midnight")
    slots = [
        {"service": "meal", "slot": "dinner", "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    ]
    t.heartbeat(serving_slots=slots)
    assert silent_alerts(county, now, [p])[p] == {}
    # Forty minutes later with no heartbeat: silent inside its own slot.
    later = now + dt.timedelta(minutes=40)
    if later.time() > end:
        pytest.skip("window too short at this hour")
    assert len(silent_alerts(county, later, [p])[p]) == 1


@pytest.mark.parametrize(
    ("slots", "why"),
    [
        ([{"service": "meal", "slot": "lunch", "start": "13:00", "end": "12:00"}], "must be after"),
        ([{"service": "bath", "slot": "lunch", "start": "11:00", "end": "12:00"}], "service"),
        ([{"service": "meal", "slot": "lunch", "start": "25:00", "end": "26:00"}], "start"),
        ([{"service": "meal", "slot": "", "start": "11:00", "end": "12:00"}], "slot"),
        (LATE_LUNCH * 9, "serving_slots"),
    ],
)
def test_heartbeat_slots_are_validated(county: County, slots: list[object], why: str) -> None:
    t = terminal(county, point(county))
    body = {"device_id": t.device_id, "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            "software_version": "test", "queue_depth": 0, "rejected": 0, "chain_head_seq": 0,
            "serving_slots": slots}  # fmt: skip
    r = county.http.post("/v1/heartbeat", json=body, headers={"Authorization": f"Bearer {t.token}"})
    assert r.status_code == 422, r.text
    assert why in r.text, r.text
