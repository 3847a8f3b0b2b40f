"""Faults between kiosk and platform: dropped links, cut answers, power cuts, bad answers."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hardware.backoff import Backoff, backoff_delay
from models.tables import Outbox
from sync.client import parse_retry_after
from sync.uploader import pending_count
from tests.support.faultproxy import FaultProxy
from tests.support.outbox import Kiosk, add_records
from tests.support.paths import REPO
from tests.support.platform import Platform

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(sqlite_platform: Platform) -> Iterator[FaultProxy]:
    p = FaultProxy(sqlite_platform.port)
    yield p
    p.close()


def drain(kiosk: Kiosk, url: str, rounds: int = 10, batch_size: int = 50) -> list:
    results = []
    for _ in range(rounds):
        result = kiosk.uploader(url, batch_size=batch_size).run_round()
        results.append(result)
        if result.ok and result.pending_left == 0:
            break
    return results


def assert_exactly(platform: Platform, kiosk: Kiosk, n: int) -> None:
    held = platform.records(kiosk.device_id)
    assert held["count"] == held["distinct_ids"] == n
    assert held["seqs"] == list(range(1, n + 1))
    assert held["broken_links"] == []
    assert pending_count(kiosk.store) == 0


def test_link_drops_and_cut_answers_still_exactly_once(
    sqlite_platform: Platform, kiosk: Kiosk, proxy: FaultProxy
) -> None:
    add_records(kiosk.store, kiosk.device_id, 200)
    # Answer lost after commit, answer cut mid-headers, cut mid-body, then another reset.
    proxy.add("reset_on_response", ("cut", 20), ("cut", 200), None, "reset_on_response")
    results = drain(kiosk, proxy.url)

    assert sum(not r.ok for r in results) >= 3
    assert sum(r.accepted for r in results) + sum(r.duplicate for r in results) >= 200
    assert sum(r.duplicate for r in results) >= 50  # the first batch came back as duplicates
    assert_exactly(sqlite_platform, kiosk, 200)
    with kiosk.store.read() as session:
        assert max(o.attempts for o in session.scalars(select(Outbox))) >= 3


def test_power_cut_after_platform_stored_before_kiosk_marked(
    sqlite_platform: Platform, kiosk: Kiosk, proxy: FaultProxy
) -> None:
    add_records(kiosk.store, kiosk.device_id, 120)
    answered = threading.Event()
    proxy.add(("hold", answered))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.upload_once", str(kiosk.store.db_path), proxy.url,
         kiosk.token, str(kiosk.key_path), kiosk.device_id],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert answered.wait(60), "the platform never answered"
    proc.kill()  # the power fails while the answer is on its way
    proc.wait()
    # The platform holds the whole first batch (all 120 records: batch size 500) ...
    assert sqlite_platform.records(kiosk.device_id)["count"] == 120
    # ... and the kiosk marked nothing.
    assert pending_count(kiosk.store) == 120

    result = kiosk.uploader(sqlite_platform.url, batch_size=500).run_round()
    assert (result.accepted, result.duplicate, result.rejected) == (0, 120, 0)
    assert_exactly(sqlite_platform, kiosk, 120)


def test_platform_killed_and_restarted_mid_backlog(sqlite_platform: Platform, kiosk: Kiosk) -> None:
    add_records(kiosk.store, kiosk.device_id, 150)
    first = kiosk.uploader(sqlite_platform.url, batch_size=50)
    batch = first._next_batch(after_seq=0)
    first._send(batch)  # one batch in
    sqlite_platform.kill()
    down = kiosk.uploader(sqlite_platform.url, batch_size=50).run_round()
    assert not down.ok and down.error and down.error.startswith("network")
    sqlite_platform.start()
    results = drain(kiosk, sqlite_platform.url)
    assert results[-1].ok
    assert_exactly(sqlite_platform, kiosk, 150)


def _http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith("content-length") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


GOOD_SHAPE = {
    "accepted": [],
    "duplicate": [],
    "rejected": [],
    "server_time": "2026-12-02T03:00:00Z",
}
JSON = "Content-Type: application/json"
BAD_ANSWERS = {
    "truncated gzip": _http(
        "200 OK",
        gzip.compress(json.dumps(GOOD_SHAPE).encode())[:25],
        JSON,
        "Content-Encoding: gzip",
    ),
    "wrong types": _http("200 OK", json.dumps({**GOOD_SHAPE, "accepted": 5}).encode(), JSON),
    "unknown record ids": _http(
        "200 OK", json.dumps({**GOOD_SHAPE, "accepted": ["not-sent"]}).encode(), JSON
    ),
    "html 200": _http(
        "200 OK", b"<html><body>Portal login</body></html>", "Content-Type: text/html"
    ),
    "html 502": _http("502 Bad Gateway", b"<html>nginx</html>", "Content-Type: text/html"),
    "huge declared": _http("200 OK", b"{}", JSON, "Content-Length: 900000000"),
    "huge streamed": _http(
        "200 OK",
        b"[" + b"0," * (3 * 1024 * 1024) + b"0]",
        JSON,
        "Connection: close",
        "Content-Length: 6291459",
    ),
    "not json": _http("200 OK", b"\x00\xff garbage", JSON),
}


@pytest.mark.parametrize("answer", sorted(BAD_ANSWERS))
def test_bad_answers_change_nothing(
    sqlite_platform: Platform,
    kiosk: Kiosk,
    proxy: FaultProxy,
    answer: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_records(kiosk.store, kiosk.device_id, 5)
    proxy.add(("canned", BAD_ANSWERS[answer]))
    result = kiosk.uploader(proxy.url, max_response_bytes=4 * 1024 * 1024).run_round()

    assert not result.ok
    assert "upload of 5 records failed" in caplog.text
    with kiosk.store.read() as session:
        rows = session.scalars(select(Outbox)).all()
    assert all(r.uploaded_at is None and r.rejected_reason is None for r in rows)
    assert all(r.attempts == 1 and r.last_error for r in rows)
    assert pending_count(kiosk.store) == 5
    # The next good round sends everything normally.
    assert kiosk.uploader(sqlite_platform.url).run_round().accepted == 5


def test_retry_after_is_honoured(kiosk: Kiosk, proxy: FaultProxy) -> None:
    add_records(kiosk.store, kiosk.device_id, 3)
    proxy.add(("canned", _http("429 Too Many Requests", b"slow down", "Retry-After: 120")))
    result = kiosk.uploader(proxy.url).run_round()
    assert result.retry_after == 120
    clock = [1000.0]
    backoff = Backoff(base=5, cap=60, rng=random.Random(1), monotonic=lambda: clock[0])
    delay = backoff.next_delay(result.retry_after)
    assert 120 <= delay <= 125  # never sooner than asked, even above the cap
    clock[0] += 119
    assert not backoff.ready()
    clock[0] += 6
    assert backoff.ready()


def test_retry_after_http_date() -> None:
    import datetime as dt

    now = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Wed, 02 Dec 2026 03:01:30 GMT", now) == 90
    assert parse_retry_after("30") == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_bounded_by_cap() -> None:
    rng = random.Random(7)
    for failures in range(1, 15):
        ceiling = min(300.0, 2.0 * 2 ** (failures - 1))
        samples = [backoff_delay(failures, base=2, cap=300, rng=rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        # Full jitter: spread over the whole window, not bunched at the top.
        assert min(samples) < ceiling * 0.1 and max(samples) > ceiling * 0.9
    with_floor = [backoff_delay(1, base=2, cap=300, rng=rng, retry_after=30) for _ in range(200)]
    assert all(30 <= s <= 32 for s in with_floor)
