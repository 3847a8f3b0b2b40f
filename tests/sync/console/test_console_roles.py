"""Issue 14.1/14.4: console logins and role separation. A session is an HttpOnly cookie that
logout and disabling the credential end server-side; every POST needs the session's CSRF
token; an operator sees only their township (another township's point, settlement or print:
404); the roster, enrolment-code and retire pages act through the same rules as the API (a
published roster reaches a terminal signed; a code works once)."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest

from sync.platform.admin_client import AdminError, enrol_device
from sync.wire import SignedRoster, public_key_from_b64, roster_message, verify
from tests.security.platform_env import TOWNSHIP_A, TOWNSHIP_B, County, public_b64
from tests.support.platform import ADMIN_TOKEN
from tests.sync.console.county import (
    Console,
    console_for,
    elder_ids,
    point,
    publish_roster,
    terminal,
)

pytestmark = pytest.mark.slow


def test_login_cookie_logout_and_disabled_credentials(county: County) -> None:
    c = Console(county.url)
    try:
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert c.http.post("/login", data={"token": ADMIN_TOKEN}).status_code == 403  # no CSRF
        bad = c.http.post("/login", data={"csrf": csrf, "token": "wrong"})
        assert bad.status_code == 401 and "令牌无效" in bad.text
        assert (
            c.get(
                "/",
            ).status_code
            == 303
        )  # still logged out

        r = c.login(ADMIN_TOKEN)
        cookie = r.headers["set-cookie"]
        assert "hlj_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert ADMIN_TOKEN not in cookie
        assert c.get("/").status_code == 200
        stolen = c.http.cookies["hlj_console"]
        # A forged cookie (same id, another MAC) is no session.
        other = httpx.Client(base_url=county.url, follow_redirects=False)
        other.cookies.set("hlj_console", stolen[:-4] + "0000")
        assert other.get("/").status_code == 303
        assert c.http.post("/logout", data={"csrf": "nope"}).status_code == 403
        assert c.post("/logout").status_code == 303
        other.cookies.set("hlj_console", stolen)  # the cookie from before the logout
        assert other.get("/").status_code == 303
        other.close()
    finally:
        c.close()

    # An operator disabled by the administrator is logged out at the next request.
    name = "op-gone-" + elder_ids("", 1)[0]
    token = county.admin.create_operator(name, TOWNSHIP_A)
    op = console_for(county, token)
    try:
        assert op.get("/console/points").status_code == 200
        county.admin._post(f"/v1/admin/operators/{name}/disable", {}, 200)
        assert op.get("/console/points").status_code == 303
    finally:
        op.close()


def test_an_operator_sees_only_their_township(county: County) -> None:
    a, b = point(county, TOWNSHIP_A, "城关一村"), point(county, TOWNSHIP_B, "河口二村")
    (ea,) = elder_ids("A", 1)
    (eb,) = elder_ids("B", 1)
    publish_roster(county, a, {ea: ("马玉兰", "active")}, TOWNSHIP_A)
    publish_roster(county, b, {eb: ("何福生", "active")}, TOWNSHIP_B)
    ta, tb = terminal(county, a, TOWNSHIP_A), terminal(county, b, TOWNSHIP_B)
    ta.upload([ta.record(dt.date(2026, 6, 3), ea)])
    tb.upload([tb.record(dt.date(2026, 6, 3), eb)])
    ta.heartbeat(headcount={"meal/lunch": 17}, caregivers_on_duty=["C001"],
                 location={"latitude": 30.1, "longitude": 104.2})  # fmt: skip

    op_b = console_for(county, county.op_b.token)
    admin = console_for(county, ADMIN_TOKEN)
    try:
        for path in (f"/console/points/{a}", f"/console/settlement/2026-06/points/{a}",
                     f"/console/settlement/2026-06/print?point={a}"):  # fmt: skip
            assert op_b.get(path).status_code == 404, path
            assert admin.get(path).status_code == 200, path
        for path in ("/", "/console/points", "/console/settlement?month=2026-06",
                     "/console/settlement/2026-06/print"):  # fmt: skip
            seen = op_b.get(path).text
            assert b in seen and a not in seen and "马玉兰" not in seen, path
        assert a in admin.get("/").text and b in admin.get("/").text
        xlsx = op_b.get("/console/settlement/2026-06/xlsx")
        assert xlsx.status_code == 200 and a.encode() not in xlsx.content
        assert op_b.post(f"/console/points/{a}/codes", {"ttl_hours": "1"}).status_code == 404
        retire = f"/console/points/{a}/devices/{ta.device_id}/retire"
        assert op_b.post(retire, {"reason": "x"}).status_code == 404
        assert (
            op_b.post(
                "/console/rates",
                {"service": "meal", "slot": "lunch", "effective_from": "2027-01-01", "amount": "1"},
            ).status_code
            == 403
        )
        # The administrator's 今日 shows what the terminal reported.
        row = re.search(rf'<tr data-point="{a}">(.*?)</tr>', admin.get("/").text, re.S)
        assert row is not None
        assert "在线" in row.group(1) and "助餐·午餐：<strong>17</strong>" in row.group(1)
        assert "C001" in row.group(1) and "30.10000, 104.20000" in row.group(1)
    finally:
        op_b.close()
        admin.close()


def test_roster_codes_and_retire_pages(county: County) -> None:
    p = point(county, TOWNSHIP_A, "三岔口助餐点")
    op = console_for(county, county.op_a.token)
    admin = console_for(county, ADMIN_TOKEN)
    try:
        # A code issued on the page enrols one terminal, once.
        page = op.post(f"/console/points/{p}/codes", {"ttl_hours": "2"})
        assert page.status_code == 200
        code = re.search(r'<span class="secret" id="new-code">([^<]+)</span>', page.text)
        assert code is not None
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        token = enrol_device(county.http, code.group(1), "dev-page-" + p[3:], p, public_b64(key))
        with pytest.raises(AdminError):
            enrol_device(county.http, code.group(1), "dev-again-" + p[3:], p,
                         public_b64(Ed25519PrivateKey.generate()))  # fmt: skip
        assert admin.post(f"/console/points/{p}/codes", {}).status_code == 403  # operator act

        # A roster CSV with Chinese headers is published, signed, and reaches the terminal.
        e1, e2 = elder_ids("R", 2)
        csv_text = f"编号,姓名,卡号,分组,状态,已签协议\n{e1},王秀英,A0000001,一组,在册,是\n{e2},李建国,,二组,暂停,否\n"
        done = op.post(f"/console/points/{p}/roster", {"csv": csv_text})
        assert done.status_code == 200 and "已发布第 1 版花名册（2 人）" in done.text
        r = county.http.get("/v1/roster", headers={"Authorization": f"Bearer {token}"})
        signed = SignedRoster.model_validate_json(r.text)
        platform_key = public_key_from_b64(county.http.get("/v1/health").json()["public_key"])
        assert verify(platform_key, roster_message(signed.payload), signed.signature)
        elders = {e["elder_id"]: e for e in json.loads(signed.payload)["elders"]}
        assert elders[e1]["status"] == "active" and elders[e1]["card_uid"] == "A0000001"
        assert elders[e2]["status"] == "suspended" and elders[e2]["agreement_signed"] is False
        for bad, why in (("姓名\n王\n", "编号"), (f"编号,姓名\n{e1},王\n{e1},李\n", "重复"),
                         (f"编号,姓名,状态\n{e1},王,出走\n", "第 2 行"), ("", "空")):  # fmt: skip
            r = op.post(f"/console/points/{p}/roster", {"csv": bad})
            assert r.status_code == 422 and why in r.text, (bad, r.text[-500:])
        assert admin.post(f"/console/points/{p}/roster", {"csv": csv_text}).status_code == 403

        # Retiring on the page stops the terminal's token at once.
        device = "dev-page-" + p[3:]
        url = f"/console/points/{p}/devices/{device}/retire"
        assert op.post(url, {"reason": ""}).status_code == 422
        assert "已停用" in op.post(url, {"reason": "被盗"}).text
        hb = county.http.post("/v1/heartbeat", headers={"Authorization": f"Bearer {token}"},
                              json={"device_id": device})  # fmt: skip
        assert hb.status_code == 401 and "retired" in hb.text
        trail = admin.get(f"/console/points/{p}").text
        assert "retire" in trail and "publish_roster" in trail and "issue_code" in trail
    finally:
        op.close()
        admin.close()


def test_hostile_requests_get_a_4xx_that_says_why(county: County) -> None:
    """The console's routes are not in the OpenAPI schema the fuzzer walks: the usual suspects
    by hand, on both backends (a 500 fails)."""
    anon = httpx.Client(base_url=county.url, follow_redirects=False, timeout=30)
    admin = console_for(county, ADMIN_TOKEN)
    try:
        login = anon.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert anon.post("/login", content=b"\xff\xfe", headers=form).status_code == 400
        assert anon.post("/login", content=b"a" * 100_000, headers=form).status_code == 413
        assert anon.post("/login", data={"csrf": csrf, "token": "令牌"}).status_code == 401
        many = "&".join(f"f{i}=1" for i in range(200))
        assert anon.post("/login", content=many.encode(), headers=form).status_code == 400
        anon.cookies.set("hlj_console", "x" * 5000)
        assert anon.get("/console/alerts").status_code == 303
        for path in (
            "/console/settlement?month=abcd",
            "/console/settlement/9999-99/xlsx",
            "/console/settlement/2026-00/print",
            "/console/static/../../app.py",
        ):
            assert admin.get(path).status_code in (400, 404), path
        for path, data in (("/console/alerts/abc/act", {"action": "ack"}),
                           ("/console/alerts/99999999999999999999/act", {"action": "ack"}),
                           ("/console/alerts/1/act", {"action": "delete"}),
                           ("/console/rates", {"service": "meal", "slot": "lunch",
                                               "effective_from": "20260101", "amount": "1"}),
                           ("/console/settlement/1900-01/close", {})):  # fmt: skip
            r = admin.post(path, data)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        big = {"csv": "编号,姓名\n" + "x" * (33 * 1024 * 1024)}
        assert admin.post("/console/points/nope/roster", big).status_code in (404, 413)
    finally:
        anon.close()
        admin.close()
