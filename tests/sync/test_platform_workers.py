"""Issue 14.3: the platform on several processes loses and doubles nothing.

`serve --workers 2` (two request processes and the background verifier process) and a second
platform process on the same PostgreSQL database get the batches of one kiosk interleaved —
even batches to one, odd to the other, at the same time — while a second kiosk at another
point records the same elders' same lunches (every slot claimed twice, concurrently), then
every batch of the first kiosk again. Every record is stored once, every slot has exactly one
claim, the background process verifies every signature, and the settlement from the claims is
the settlement ranked over the records."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from sync.platform import settlement
from tests.security.platform_env import County, Device, make_county, record
from tests.support.platform import Platform, Postgres, start_platform
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow
PER_DEVICE, BATCH, ELDERS = 240, 10, 40


@pytest.fixture(scope="module")
def two(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[Platform, Platform]]:  # fmt: skip
    db_url = postgres.new_database()
    deferred = ("--signatures", "deferred", "--signature-interval", "0.2")
    a = start_platform(db_url, tmp_path_factory.mktemp("workers-a"), "--workers", "2", *deferred)
    try:
        # A second process on the same database, no verifier of its own.
        b = start_platform(db_url, tmp_path_factory.mktemp("workers-b"), "--signatures",
                           "deferred", "--signature-interval", "0")  # fmt: skip
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def batches(device: Device, tag: str) -> list[list[dict[str, Any]]]:
    """The device's chain: lunch of elder k % ELDERS on day 1 + k // ELDERS, in batches."""
    chain, prev = [], "0" * 64
    for k in range(PER_DEVICE):
        rec = record(device, k + 1, prev, day=dt.date(2026, 11, 1 + k // ELDERS),
                     elder=f"W{tag}-{k % ELDERS}")  # fmt: skip
        chain.append(rec)
        prev = rec["hash"]
    return [chain[i : i + BATCH] for i in range(0, PER_DEVICE, BATCH)]


def send(url: str, device: Device, sent: list[list[dict[str, Any]]],
         answers: list[tuple[list[str], dict[str, Any]]]) -> None:  # fmt: skip
    import gzip
    import json

    with httpx.Client(base_url=url, timeout=60) as http:
        for recs in sent:
            body = {"protocol": 1, "device_id": device.device_id,
                    "sent_at": dt.datetime.now(dt.UTC).isoformat(), "records": recs}  # fmt: skip
            while True:
                r = http.post("/v1/records", content=gzip.compress(json.dumps(body).encode()),
                              headers={"Authorization": f"Bearer {device.token}",
                                       "Content-Encoding": "gzip"})  # fmt: skip
                if r.status_code != 503:  # busy: the kiosk's uploader retries too
                    break
                time.sleep(0.1)
            assert r.status_code == 200, r.text
            answers.append(([x["record_id"] for x in recs], r.json()))


def test_interleaved_batches_on_two_processes_lose_and_double_nothing(
    two: tuple[Platform, Platform],
) -> None:
    a, b = two
    county: County = make_county(a)
    d1, d2 = county.device(), county.device()
    tag = d1.device_id[-6:]
    # The elders are on d1's point's roster; at d2's point they are roaming (visitors).
    roster = [{"elder_id": f"W{tag}-{i}", "name": f"老人{i}", "status": "active"}
              for i in range(ELDERS)]  # fmt: skip
    county.op_a._post("/v1/admin/roster", {"point_id": d1.point_id, "elders": roster}, 200)
    b1, b2 = batches(d1, tag), batches(d2, tag)
    answers: list[tuple[list[str], dict[str, Any]]] = []
    plan = [(a.url, d1, b1[0::2]), (b.url, d1, b1[1::2]),
            (b.url, d2, b2[0::2]), (a.url, d2, b2[1::2])]  # fmt: skip
    threads = [threading.Thread(target=send, args=(*p, answers)) for p in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    send(a.url, d1, b1, answers)  # everything again: duplicates only

    assert len(answers) == 2 * len(b1) + len(b2)
    for ids, result in answers:
        assert result["rejected"] == [], result["rejected"]
        assert sorted(result["accepted"] + result["duplicate"]) == sorted(ids)
    accepted = [rid for _, result in answers for rid in result["accepted"]]
    assert len(accepted) == len(set(accepted)) == 2 * PER_DEVICE

    engine = create_engine(a.db_url)
    try:

        def verified() -> bool:
            with engine.connect() as conn:
                return not conn.execute(text(
                    "SELECT count(*) FROM record WHERE signature_ok IS NOT TRUE"
                )).scalar_one()  # fmt: skip

        wait_until(verified, "the background process to verify every signature", timeout=60)
        with engine.connect() as conn:
            per_device: dict[str, int] = dict(conn.execute(text(
                "SELECT device_id, count(DISTINCT seq) FROM record GROUP BY device_id"
            )).all())  # fmt: skip
            claims = conn.execute(text(
                "SELECT count(*), sum(CASE WHEN claimed THEN 1 ELSE 0 END), "
                "count(DISTINCT (elder_id, service_date)) FROM meal_claim "
                "WHERE elder_id LIKE :tag"
            ), {"tag": f"W{tag}-%"}).one()  # fmt: skip
            twice = conn.execute(text(
                "SELECT count(*) FROM (SELECT 1 FROM meal_claim WHERE claimed "
                "GROUP BY elder_id, service, slot, service_date HAVING count(*) > 1) x"
            )).scalar_one()  # fmt: skip
        assert per_device == {d1.device_id: PER_DEVICE, d2.device_id: PER_DEVICE}
        assert tuple(claims) == (2 * PER_DEVICE, PER_DEVICE, PER_DEVICE) and twice == 0
        with Session(engine) as session:
            points = [d1.point_id, d2.point_id]
            ours = settlement.compute(session, "2026-11", points)
            ranked = settlement.compute_from_records(session, "2026-11", points)
        assert ours.lines == ranked.lines and ours.exceptions == ranked.exceptions
        # One subsidised lunch per elder and day, whichever point's the platform kept first;
        # the other point's is the duplicate.
        assert ours.total_meals == PER_DEVICE and len(ours.exceptions) == PER_DEVICE
        assert {e.kind for e in ours.exceptions} == {"duplicate"}
    finally:
        engine.dispose()
