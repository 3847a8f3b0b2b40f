# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, point 5: records that cannot be a real meal are refused with a reason, and a
record_id sent twice in one batch gets exactly one outcome.

Every record here is correctly chained and signed with the device's key: the attack is a
terminal (or whoever holds its key) dating meals into years nobody was served, or claiming a
service day other than the day of the check-in. Before the fix they were all accepted.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sync.wire import GENESIS_HASH
from tests.security.platform_env import (
    SITE,
    County,
    chain,
    county,
    record,
    upload,
)


def outcome(result: dict, record_id: str) -> str:
    places = [k for k in ("accepted", "duplicate") if record_id in result[k]]
    places += ["rejected" for r in result["rejected"] if r["record_id"] == record_id]
    assert len(places) == 1, f"{record_id} reported {places}"
    return places[0]


def reason(result: dict, record_id: str) -> str:
    return next(r["reason"] for r in result["rejected"] if r["record_id"] == record_id)


@pytest.mark.parametrize(
    ("day", "at", "why"),
    [
        # (UTC stamps: Shanghai's 1900 offset, +08:05:43, is not valid on the wire)
        (dt.date(1900, 1, 1), dt.datetime(1900, 1, 1, 3, 30, tzinfo=dt.UTC), "before the"),
        (dt.date(2099, 1, 1), dt.datetime(2099, 1, 1, 3, 30, tzinfo=dt.UTC), "in the future"),
        # Served "on the 30th" but checked in on the 29th (site time): a meal moved to a day.
        (dt.date(2026, 11, 30), dt.datetime(2026, 11, 29, 12, 0, tzinfo=SITE), "differs"),
        # 23:30 UTC on the 29th is 07:30 on the 30th in the site's zone: that one is right.
        (dt.date(2026, 11, 29), dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC), "differs"),
    ],
)
def test_implausible_dates_are_rejected_with_a_reason(
    county: County, day: dt.date, at: dt.datetime | None, why: str
) -> None:
    device = county.device()
    bad = record(device, 1, GENESIS_HASH, day=day, checked_in_at=at)
    result = upload(county, device, [bad]).json()
    assert outcome(result, bad["record_id"]) == "rejected", result
    assert "implausible_date" in reason(result, bad["record_id"])
    assert why in reason(result, bad["record_id"])
    alerts = county.as_admin("GET", "/v1/admin/alerts", params={"device_id": device.device_id})
    assert [a["kind"] for a in alerts.json()] == ["implausible_date"]
    assert (
        county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()["count"] == 0
    )


def test_site_zone_decides_the_day(county: County) -> None:
    device = county.device()
    at = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)  # 07:30 on the 30th in Shanghai
    good = record(device, 1, GENESIS_HASH, day=dt.date(2026, 11, 30), checked_in_at=at)
    result = upload(county, device, [good]).json()
    assert result["accepted"] == [good["record_id"]], result


def test_same_record_id_twice_in_one_batch_is_reported_once(county: County) -> None:
    device = county.device()
    records = chain(device, 3)
    # An identical copy: one outcome (accepted), stored once.
    result = upload(county, device, [*records, records[1]]).json()
    assert sorted(result["accepted"]) == sorted(r["record_id"] for r in records)
    assert result["duplicate"] == [] and result["rejected"] == []
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == 3

    # The same id with other content in one batch: rejected once, neither copy stored.
    twin_id = "0193a000-0000-7000-8000-00000000abcd"
    a = record(device, 4, records[-1]["hash"], record_id=twin_id, elder="E1")
    b = record(device, 4, records[-1]["hash"], record_id=twin_id, elder="E2")
    result = upload(county, device, [a, b]).json()
    assert outcome(result, twin_id) == "rejected"
    assert len(result["rejected"]) == 1 and "twice in the batch" in result["rejected"][0]["reason"]
    view = county.as_admin("GET", f"/v1/admin/devices/{device.device_id}/records").json()
    assert view["count"] == 3
