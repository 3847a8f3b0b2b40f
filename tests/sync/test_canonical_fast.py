"""The platform's fast canonical encoding of a record (sync.platform.ingest.canonical_record)
is byte for byte models.chain.canonical_bytes, which the kiosk hashes: any difference would
reject genuine records as edited."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from sync.platform.ingest import canonical_record
from sync.wire import WireRecord, canonical_bytes

SITE = dt.timezone(dt.timedelta(hours=8))
AWKWARD = ["", "王秀英", 'quote " and \\ backslash', "tab\tnew\nline", "\x01\x1f", "\u2028",
           "emoji 😀", "a" * 64]  # fmt: skip
FLOATS = [None, 0.0, -0.0, 0.41, 1e-7, 123456.7891234, 1e16, -2.5, 0.1 + 0.2, 5e-324]


def wire(rng: random.Random, **over: Any) -> WireRecord:
    fields: dict[str, Any] = {
        "record_id": rng.choice(["6f1c-" + str(rng.random()), "x"]),
        "seq": rng.choice([1, 2**31 - 1, rng.randint(1, 10**6)]),
        "device_id": rng.choice(AWKWARD[1:]),
        "elder_id": rng.choice(AWKWARD[1:]),
        "service": rng.choice(["meal", "cleaning", "助洁"]),
        "slot": rng.choice(["lunch", "dinner", "day"]),
        "service_date": dt.date(2026, 11, rng.randint(1, 30)),
        "checked_in_at": dt.datetime(
            2026, 11, 3, 11, 30, rng.randint(0, 59), rng.choice([0, 1, 999999]), tzinfo=SITE
        ),
        "method": rng.choice(["card", "manual", "face"]),
        "card_uid": rng.choice([None, "04A1B2C3"]),
        "reader": rng.choice([None, "desk"]),
        "distance": rng.choice(FLOATS),
        "margin": rng.choice(FLOATS),
        "liveness": rng.choice([None, "pass"]),
        "flags": rng.choice(["", "no_face", "visitor,no_face"]),
        "caregiver_id": rng.choice([None, "C007"]),
        "reason": rng.choice([None, *AWKWARD[:6]]),
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
        "signature": "sig",
        **over,
    }
    return WireRecord(**fields)


def test_fast_canonical_equals_the_chain_encoding() -> None:
    rng = random.Random(14)
    for _ in range(3000):
        rec = wire(rng)
        assert canonical_record(rec) == canonical_bytes(rec.chained()), rec


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_take_the_general_path(value: float) -> None:
    rec = wire(random.Random(1), distance=value)
    assert canonical_record(rec) == canonical_bytes(rec.chained())
