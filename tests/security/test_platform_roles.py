# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, point 1: separate roles instead of one token that does everything.

The attacks: a township operator publishing a roster (adding elders) for a meal point of
another township, issuing enrolment codes there, reading its records and alerts, creating
operators; the administrator publishing a roster without an operator (and so without a trail
of who); a disabled operator carrying on. Before the fix the one operator token did all of it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from tests.security.platform_env import (
    ADMIN_TOKEN,
    TOWNSHIP_A,
    TOWNSHIP_B,
    County,
    call,
    chain,
    county,
    upload,
)

ELDER = {"elder_id": "R001", "name": "王秀英", "card_uid": "B0000001"}


def publish(county: County, token: str, point_id: str) -> int:
    body = {"point_id": point_id, "elders": [ELDER]}
    return call(county.http, "POST", "/v1/admin/roster", token, json=body).status_code


def test_operators_act_only_in_their_township(county: County) -> None:
    point_a, point_b = county.point(TOWNSHIP_A), county.point(TOWNSHIP_B)
    device_b = county.device(TOWNSHIP_B)
    upload(county, device_b, chain(device_b, 2, day=dt.date(1999, 1, 1)))  # alerts for B
    a = county.op_a.token

    assert publish(county, a, point_a) == 200
    assert publish(county, a, point_b) == 404  # another township's point: not even visible
    assert publish(county, a, "pt-nowhere") == 404  # an unregistered point
    r = call(county.http, "POST", f"/v1/admin/points/{point_b}/enrolment-codes", a, json={})
    assert r.status_code == 404, r.text
    for path in (f"/v1/admin/devices/{device_b.device_id}/records",
                 f"/v1/admin/devices/{device_b.device_id}/safety"):  # fmt: skip
        assert call(county.http, "GET", path, a).status_code == 404
    r = call(county.http, "POST", f"/v1/admin/devices/{device_b.device_id}/rekey", a,
             json={"reason": "take it over"})  # fmt: skip
    assert r.status_code == 404, r.text

    # Lists are scoped: B's device, its alerts and its audit trail are not in A's answers.
    devices = call(county.http, "GET", "/v1/admin/devices", a).json()
    assert device_b.device_id not in {d["device_id"] for d in devices}
    alerts = call(county.http, "GET", "/v1/admin/alerts", a).json()
    assert device_b.point_id not in {x["point_id"] for x in alerts}
    trail = call(county.http, "GET", "/v1/admin/audit", a).json()
    assert point_b not in {e["point_id"] for e in trail}
    me = call(county.http, "GET", "/v1/admin/me", a).json()
    assert me["role"] == "operator" and me["township"] == TOWNSHIP_A
    points = call(county.http, "GET", "/v1/admin/points", a).json()
    assert {p["township"] for p in points} == {TOWNSHIP_A}

    # The administrator sees all of it (B's device's implausible-date alerts included).
    alerts = county.as_admin("GET", "/v1/admin/alerts", params={"point_id": device_b.point_id})
    assert alerts.json(), alerts.text


def test_only_the_administrator_creates_operators_and_points(county: County) -> None:
    a = county.op_a.token
    body = {"name": "op-" + uuid.uuid4().hex[:6], "role": "admin"}
    assert call(county.http, "POST", "/v1/admin/operators", a, json=body).status_code == 403
    body = {"point_id": "pt-" + uuid.uuid4().hex[:6], "township": TOWNSHIP_A}
    assert call(county.http, "POST", "/v1/admin/points", a, json=body).status_code == 403
    assert call(county.http, "POST", "/v1/admin/verify", a).status_code == 403


def test_the_administrator_does_not_act_as_an_operator(county: County) -> None:
    point = county.point()
    assert publish(county, ADMIN_TOKEN, point) == 403
    r = call(county.http, "POST", f"/v1/admin/points/{point}/enrolment-codes", ADMIN_TOKEN,
             json={})  # fmt: skip
    assert r.status_code == 403, r.text


def test_a_disabled_operator_is_refused(county: County) -> None:
    name = "op-" + uuid.uuid4().hex[:6]
    token = county.admin.create_operator(name, TOWNSHIP_A)
    point = county.point()
    assert publish(county, token, point) == 200
    r = county.as_admin("POST", f"/v1/admin/operators/{name}/disable")
    assert r.status_code == 200, r.text
    assert publish(county, token, point) == 401
    trail = county.as_admin("GET", "/v1/admin/audit").json()
    assert any(e["action"] == "disable_credential" and e["detail"]["name"] == name for e in trail)
