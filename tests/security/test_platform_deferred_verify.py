# ruff: noqa: F401 — pytest fixtures imported from platform_env are used as parameters
"""Issue 14, point 3: record signatures checked off the request path still catch a forgery.

With `serve --signatures deferred` the platform answers a batch after checking each record's
hash, chain links and checkpoints, and leaves the Ed25519 signature to the background verifier
(sync/platform/signature_check.py). The attack: a record whose content and hash are consistent
and whose link to its neighbours is right, but signed with a key that is not the device's (a
copied database re-signed by someone else, or a record injected by whoever holds the token).
It is accepted in the answer; the verifier must then mark it unverified and raise a `forged`
alert with its evidence, while the genuine records around it become verified.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from sync.platform.settlement import compute
from sync.wire import GENESIS_HASH
from tests.security.platform_env import (
    County,
    chain,
    make_county,
    record,
    upload,
)
from tests.support.platform import backend_db_url, start_platform
from tests.support.wait import wait_until

N = 12
FORGED_SEQ = 6


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deferred_county(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[County]:
    workdir: Path = tmp_path_factory.mktemp(f"deferred-{request.param}")
    db_url = backend_db_url(request, request.param, workdir)
    # The platform with the background signature verifier running, checking every 0.2 s.
    platform = start_platform(db_url, workdir, "--signatures", "deferred",
                              "--signature-interval", "0.2")  # fmt: skip
    try:
        yield make_county(platform)
    finally:
        platform.stop()


def signature_states(county: County, device_id: str) -> dict[int, bool | None]:
    engine = create_engine(county.platform.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT seq, signature_ok FROM record WHERE device_id = :d"),
                {"d": device_id},
            ).all()
    finally:
        engine.dispose()
    return {int(seq): (None if ok is None else bool(ok)) for seq, ok in rows}


def alerts(county: County, device_id: str) -> list[dict]:
    r = county.as_admin("GET", "/v1/admin/alerts", params={"device_id": device_id})
    assert r.status_code == 200, r.text
    return list(r.json())


def test_a_forged_signature_is_accepted_then_alerted_and_left_unverified(
    deferred_county: County,
) -> None:
    county = deferred_county
    device = county.device()
    impostor = Ed25519PrivateKey.generate()
    records = chain(device, FORGED_SEQ - 1)
    forged = record(device, FORGED_SEQ, records[-1]["hash"], key=impostor)
    records.append(forged)
    records += chain(device, N - FORGED_SEQ, start=FORGED_SEQ + 1, prev=forged["hash"])

    r = upload(county, device, records)
    assert r.status_code == 200, r.text
    # Deferred: the hash and the chain are right, so the answer accepts every record.
    assert len(r.json()["accepted"]) == N and r.json()["rejected"] == []

    def checked() -> bool:
        return None not in signature_states(county, device.device_id).values()

    wait_until(checked, "the background verifier to check every signature", timeout=30)
    states = signature_states(county, device.device_id)
    assert states == {seq: seq != FORGED_SEQ for seq in range(1, N + 1)}
    [alert] = [a for a in alerts(county, device.device_id) if a["kind"] == "forged"]
    assert alert["seq"] == FORGED_SEQ and alert["record_id"] == forged["record_id"]
    assert alert["point_id"] == device.point_id
    assert alert["evidence"]["hash"] == forged["hash"]
    assert alert["evidence"]["signature"] == forged["signature"]
    # and the settlement never pays it: it is listed apart, the genuine ones are paid
    engine = create_engine(county.platform.db_url)
    try:
        with Session(engine) as session:
            month = compute(session, "2026-11", [device.point_id])
    finally:
        engine.dispose()
    unverified = [e.record_id for e in month.exceptions if e.kind == "unverified"]
    assert unverified == [forged["record_id"]]  # the verified ones are judged as usual


def test_hash_and_chain_are_still_checked_on_the_request_path(deferred_county: County) -> None:
    county = deferred_county
    device = county.device()
    records = chain(device, 4)
    edited = {**records[2], "elder_id": "E09999"}  # content no longer matches its hash
    r = upload(county, device, [*records[:2], edited])
    assert r.status_code == 200, r.text
    assert [x["record_id"] for x in r.json()["rejected"]] == [edited["record_id"]]
    assert r.json()["rejected"][0]["reason"].startswith("edited")

    # A genuine-looking record 4 that does not link to the stored record 3's hash.
    stray = record(device, 3, GENESIS_HASH)
    r = upload(county, device, [records[2], stray])
    body = r.json()
    assert records[2]["record_id"] in body["accepted"]
    assert [x["reason"].split(":")[0] for x in body["rejected"]] == ["fork"]
    kinds = {a["kind"] for a in alerts(county, device.device_id)}
    assert {"edited", "fork"} <= kinds


def test_the_verifier_yields_to_uploads_in_flight_for_a_bounded_time(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the verifier waits while BUSY_TRANSACTIONS other transactions are in
    flight (uploads being stored), for at most MAX_YIELD_S at a stretch; then it runs a round
    whatever the load. Real transactions held open on the platform's database."""
    from sqlalchemy.orm import sessionmaker

    from models.db import make_engine
    from sync.platform import signature_check

    db_url = backend_db_url(request, "postgres", tmp_path)
    engine = make_engine(db_url, pool_size=2, max_overflow=0)
    others = create_engine(db_url, pool_size=8, max_overflow=0)
    gate = signature_check.YieldToIngest(sessionmaker(engine))
    held = []
    try:
        assert not gate.busy() and not gate()
        for _ in range(signature_check.BUSY_TRANSACTIONS):
            conn = others.connect()
            conn.execute(text("SELECT 1"))  # a transaction open and idle, as ingest's are
            held.append(conn)
        assert gate.busy() and gate()  # yields, and keeps yielding ...
        assert gate()
        monkeypatch.setattr(signature_check, "MAX_YIELD_S", 0.0)
        assert not gate()  # ... until the bound: one round runs
        for conn in held:
            conn.rollback()
        assert not gate.busy() and not gate()
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
        others.dispose()
