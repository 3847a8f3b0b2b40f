"""Bad input, property-based: every HTTP endpoint of the kiosk and the reference platform (from
their OpenAPI documents), config files, card numbers, serial reader frames, roster rows (CSV and
XLSX) and platform roster JSON, and what a broken or hostile platform answers.

The properties: no crash (only the documented error type), no 5xx from a bad request, no
partial write, and the error names what was wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hardware.card_uid import InvalidUidError, UidFormat, normalise
from hardware.serial_reader import FrameDecoder
from kiosk.api.factory import create_app
from kiosk.config import ConfigError, KioskConfig, parse_config
from kiosk.ops.roster_import import RosterError, parse_rows, read_table
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.caregivers import CaregiverBook
from models.db import Store
from models.roster import apply_rows
from models.tables import AuditEvent, Elder, MealRecord
from sync import wire
from sync.client import PlatformClient, PlatformError
from sync.platform.admin_client import enrol_with_admin, setup_operator
from sync.platform.app import create_platform_app
from sync.roster_pull import current_roster_version, pull_roster
from sync.signing import PlatformVerifier
from tests.faults.harness import check_store, size
from tests.faults.openapi_fuzz import ANY_JSON, NASTY_TEXT, SchemaGen, operations, requests_for
from tests.support.config import BASE_CONFIG
from tests.support.roster import TZ

EXAMPLES = size(25, 250)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
# Streams forever by design (its one input, Last-Event-ID, is fuzzed separately below).
ENDLESS = {("GET", "/api/events")}


def count(figures: dict[str, Any], key: str, n: int = 1) -> None:
    figures[key] = figures.get(key, 0) + n


# ----------------------------------------------------------------------------- HTTP: kiosk


def signed_in_client(services: KioskServices) -> TestClient:
    book = CaregiverBook(services.store, services.config.ui, services.now)
    if not book.all():
        book.add("王秀兰", "2580", phone="13900001111", role="in_charge")
    client = TestClient(create_app(services), raise_server_exceptions=False)
    page = client.get("/caregiver/login")
    token = client.cookies.get("kiosk_csrf")
    assert page.status_code == 200 and token
    resp = client.post(
        "/caregiver/login",
        data={"csrf": token, "caregiver_id": book.all()[0].caregiver_id, "pin": "2580"},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    client.headers["x-csrf-token"] = token
    return client


def fuzz_app(
    client: TestClient,
    spec: dict[str, Any],
    figures: dict[str, Any],
    auth_headers: list[dict[str, str]],
    check: Callable[[], None],
) -> int:
    gen = SchemaGen(spec)
    ops = [op for op in operations(spec) if (op.method, op.path) not in ENDLESS]
    assert ops, "no operations in the OpenAPI document"
    tried = 0
    for op in ops:

        @FUZZ
        @given(req=requests_for(op, gen), auth=st.sampled_from(auth_headers), op=st.just(op))
        def one(req: dict[str, Any], auth: dict[str, str], op: Any) -> None:
            nonlocal tried
            headers = {**req.pop("headers", {}), **auth}
            resp = client.request(**req, headers=headers, follow_redirects=False)
            tried += 1
            assert resp.status_code < 500, f"{op}: {resp.status_code} {resp.text[:300]} for {req}"
            if resp.status_code in (400, 422) and "json" in resp.headers.get("content-type", ""):
                body = resp.json()
                why = isinstance(body, dict) and any(body.get(k) for k in ("detail", "message"))
                assert why, f"{op}: an error without a reason: {resp.text}"

        one()
        check()
    count(figures, "fuzz_http_requests", tried)
    count(figures, "fuzz_http_operations", len(ops))
    return tried


def test_every_kiosk_endpoint_survives_generated_and_wrong_requests(
    services: KioskServices, figures: dict[str, Any]
) -> None:
    client = signed_in_client(services)
    session_headers = {"cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}
    anonymous = TestClient(create_app(services), raise_server_exceptions=False)
    with services.store.read() as s:
        before = s.scalar(select(func.count()).select_from(MealRecord))

    def no_partial_write() -> None:
        facts = check_store(services.store.db_path)
        for rec in facts.records[before:]:  # only a caregiver's manual check-in may add one
            assert rec["method"] == "manual" and rec["caregiver_id"], rec

    spec = anonymous.get("/openapi.json").json()
    fuzz_app(anonymous, spec, figures, [{}], no_partial_write)
    # The same with a caregiver session and a valid CSRF token: deeper into the handlers.
    fuzz_app(client, spec, figures, [session_headers], no_partial_write)
    for last_id in ["", "abc", "-5", "99999999999999999999", "1e3", "\x00"]:
        with anonymous.stream("GET", "/api/events", headers={"last-event-id": last_id}) as resp:
            assert resp.status_code == 200
            services.stopping.set()  # ends the stream after the replay


# ----------------------------------------------------------------------------- HTTP: platform

ADMIN = "fuzz-admin-token"


def test_every_platform_endpoint_survives_generated_and_wrong_requests(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    app = create_platform_app(f"sqlite:///{tmp_path / 'p.db'}", Ed25519PrivateKey.generate(), ADMIN)
    client = TestClient(app, raise_server_exceptions=False)
    device_key = Ed25519PrivateKey.generate()
    device_id = "fuzz-" + uuid.uuid4().hex[:8]
    public_key = wire.b64encode(device_key.public_key().public_bytes_raw())
    operator = setup_operator(client, ADMIN, "fuzz-township", "fuzz-operator")
    token = enrol_with_admin(
        client, ADMIN, device_id, "pt-fuzz", public_key, township="fuzz-township",
        operator=operator,
    )  # fmt: skip
    auths = [
        {},
        {"authorization": "Bearer nonsense"},
        {"authorization": f"Bearer {token}"},
        {"authorization": f"Bearer {ADMIN}"},
        {"authorization": f"Bearer {operator.token}"},
    ]

    def nothing_forged_stored() -> None:
        resp = client.get(
            f"/v1/admin/devices/{device_id}/records", headers={"authorization": f"Bearer {ADMIN}"}
        )
        assert resp.status_code == 200
        assert resp.json()["count"] == 0, f"the platform stored fuzzed records: {resp.text}"

    spec = client.get("/openapi.json").json()
    fuzz_app(client, spec, figures, auths, nothing_forged_stored)


# ----------------------------------------------------------------------------- config files

CONFIG_LINES = BASE_CONFIG.splitlines()


@st.composite
def mutated_config(draw: st.DrawFn) -> str:
    lines = list(CONFIG_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        action = draw(st.sampled_from(["value", "drop", "dup", "indent", "junk"]))
        if action == "value" and ":" in line:
            key = line.split(":", 1)[0]
            value = draw(ANY_JSON | NASTY_TEXT)
            lines[i] = f"{key}: {json.dumps(value, ensure_ascii=False)}"
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, line)
        elif action == "indent":
            lines[i] = " " * draw(st.integers(0, 5)) + line.lstrip()
        else:
            lines.insert(i, draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


def test_config_files_either_load_or_say_where_and_what(figures: dict[str, Any]) -> None:
    tried = 0

    @FUZZ
    @given(text=mutated_config())
    def one(text: str) -> None:
        nonlocal tried
        tried += 1
        try:
            assert isinstance(parse_config(text, file="fuzz.yaml"), KioskConfig)
        except ConfigError as exc:
            assert exc.problems, "ConfigError without a problem"
            for p in exc.problems:
                assert str(p).startswith("fuzz.yaml") and p.message.strip(), str(p)

    one()
    count(figures, "fuzz_config_files", tried)


# ----------------------------------------------------------------------------- card numbers, frames

FORMATS = [f.value for f in UidFormat]


def test_card_numbers_normalise_or_say_why(figures: dict[str, Any]) -> None:
    tried = 0

    @FUZZ
    @given(
        raw=st.text(max_size=40) | st.from_regex(r"[0-9A-Fa-f :\-]{0,30}", fullmatch=True),
        delivered=st.sampled_from(FORMATS),
        form=st.sampled_from(FORMATS),
    )
    def one(raw: str, delivered: str, form: str) -> None:
        nonlocal tried
        tried += 1
        try:
            out = normalise(raw, delivered, form)
        except InvalidUidError as exc:
            assert str(exc).strip(), "an empty reason"
            return
        assert out and out.isascii() and out == out.strip(), out

    one()
    count(figures, "fuzz_card_numbers", tried)


def test_serial_frames_decode_to_card_numbers_or_nothing(figures: dict[str, Any]) -> None:
    tried = 0

    @FUZZ
    @given(
        chunks=st.lists(
            st.binary(max_size=64)
            | st.builds(lambda h: b"\x02" + h.encode() + b"\x03", st.text("0123456789ABCDEF"))
            | st.builds(lambda h: h.encode() + b"\r\n", st.text("0123456789ABCDEF")),
            max_size=8,
        ),
        frame=st.sampled_from(["ascii_line", "stx_etx_hex"]),
        checksum=st.sampled_from(["xor", "none"]),
    )
    def one(chunks: list[bytes], frame: str, checksum: str) -> None:
        nonlocal tried
        tried += 1
        decoder = FrameDecoder(frame, checksum)
        for chunk in chunks:
            for card in decoder.feed(chunk):
                assert isinstance(card, str) and card.isascii() and card.strip() == card
                with contextlib.suppress(InvalidUidError):
                    normalise(card, "hex", "hex")

    one()
    count(figures, "fuzz_serial_frames", tried)


# ----------------------------------------------------------------------------- roster rows

HEADER = ["编号", "姓名", "身份证号", "卡号", "组别", "联系电话", "状态", "协议"]


@st.composite
def roster_table(draw: st.DrawFn) -> list[list[str]]:
    good = [
        [f"E{n:04d}", f"老人{n}", "14112919400101000X", f"{0xB0000000 + n:08X}", "一组",
         "13800000000", "在册", "是"]
        for n in range(1, draw(st.integers(1, 4)) + 1)
    ]  # fmt: skip
    for row in good:
        if draw(st.booleans()):
            row[draw(st.integers(0, len(row) - 1))] = draw(NASTY_TEXT | st.text(max_size=12))
    if draw(st.booleans()):
        good.append(list(good[0]))  # a duplicate row
    return [HEADER, *good]


def test_roster_rows_apply_whole_or_not_at_all(
    store: Store, tmp_path: Path, figures: dict[str, Any]
) -> None:
    tried = 0
    import openpyxl

    @FUZZ
    @given(table=roster_table(), as_xlsx=st.booleans())
    def one(table: list[list[str]], as_xlsx: bool) -> None:
        nonlocal tried
        tried += 1
        path = tmp_path / ("r.xlsx" if as_xlsx else "r.csv")
        if as_xlsx:
            wb = openpyxl.Workbook()
            from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

            for row in table:  # an XLSX cannot hold control characters at all
                wb.active.append([ILLEGAL_CHARACTERS_RE.sub("", c) for c in row])
            wb.save(path)
        else:
            path.write_text("\n".join(",".join(c.replace(",", " ") for c in r) for r in table))
        with store.read() as s:
            before = sorted(s.scalars(select(Elder.elder_id)).all())
        try:
            rows = parse_rows(read_table(path), UidFormat.HEX)
        except RosterError as exc:
            assert str(exc).strip(), "a roster refusal without a reason"
            with store.read() as s:
                assert sorted(s.scalars(select(Elder.elder_id)).all()) == before
            return
        apply_rows(store, rows, dt.datetime.now(TZ), source="fuzz")

    one()
    count(figures, "fuzz_roster_files", tried)


# ----------------------------------------------------------------------------- platform answers


def answers() -> st.SearchStrategy[tuple[int, dict[str, str], bytes]]:
    json_h = {"content-type": "application/json"}
    good_roster = json.dumps({"version": 2, "payload": "{}", "signature": "AAAA"}).encode()
    return st.one_of(
        st.tuples(st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 413, 429, 500, 503]),
                  st.just(json_h), st.binary(max_size=200)),
        st.tuples(st.just(200), st.just(json_h), ANY_JSON.map(lambda v: json.dumps(v).encode())),
        st.tuples(st.just(200), st.just({**json_h, "content-encoding": "gzip"}),
                  st.integers(1, 30).map(lambda n: gzip.compress(good_roster)[:n])),
        st.tuples(st.just(200), st.just({"content-type": "text/html"}), st.just(b"<html>")),
        st.tuples(st.just(200), st.just(json_h), st.just(b" " * (3 * 1024 * 1024))),
        st.tuples(st.just(200), st.just({**json_h, "content-length": str(10**10)}), st.just(b"{}")),
        st.tuples(st.just(200), st.just(json_h), st.builds(
            lambda v, p, s: json.dumps({"version": v, "payload": p, "signature": s}).encode(),
            st.integers(-5, 10**12), st.text(max_size=40), st.text(max_size=90))),
    )  # fmt: skip


def test_broken_platform_answers_are_refused_and_change_nothing(
    store: Store, figures: dict[str, Any]
) -> None:
    tried = 0
    apply_rows(store, [], dt.datetime.now(TZ), source="seed")
    verifier = PlatformVerifier(Ed25519PrivateKey.generate().public_key())
    with store.read() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEvent))
    version = current_roster_version(store)

    @FUZZ
    @given(answer=answers())
    def one(answer: tuple[int, dict[str, str], bytes]) -> None:
        nonlocal tried
        tried += 1
        status, headers, body = answer

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, headers=headers, content=body)

        client = PlatformClient("http://platform.test", "tok", max_response_bytes=1024 * 1024)
        client._http = httpx.Client(
            base_url="http://platform.test", transport=httpx.MockTransport(handler)
        )
        try:
            outcome = pull_roster(store, client, verifier, "pt", dt.datetime.now(TZ))
        except PlatformError as exc:
            assert exc.kind and str(exc).strip()
        else:
            assert outcome.status in ("refused", "unchanged"), outcome
        finally:
            client.close()
        # A roster signed by nobody we trust never changes the elders.
        assert current_roster_version(store) == version

    one()
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(Elder)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) >= audit_before
    count(figures, "fuzz_platform_answers", tried)


pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.timeout(size(120, 1800)),
]
