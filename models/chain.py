"""The hash chain that makes local edits evident.

Each record's hash covers its content and the previous record's hash, so changing, removing or
re-ordering any stored record breaks every link after it. The function is pure and lives with
the data; it runs inside the insert transaction (see `models.records`). Signing the hashes with
the device key is sync/'s job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64

# The fields a record's hash covers, in a fixed order. Upload state and the signature are
# deliberately outside: they change after the record is written.
CHAINED_FIELDS = (
    "record_id",
    "seq",
    "device_id",
    "elder_id",
    "service",
    "slot",
    "service_date",
    "checked_in_at",
    "method",
    "card_uid",
    "reader",
    "distance",
    "margin",
    "liveness",
    "flags",
    "caregiver_id",
    "reason",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)  # stable across float formatting
    return value


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes hashed for a record: sorted-key compact JSON of the chained fields."""
    body = {name: _canonical(fields.get(name)) for name in CHAINED_FIELDS}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def link_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_bytes(fields)).hexdigest()


@dataclass(frozen=True)
class ChainFault:
    seq: int
    problem: str


def verify_chain(records: Iterable[Mapping[str, Any]]) -> list[ChainFault]:
    """Check records (ordered by seq, starting at 1) for gaps, broken links and edits."""
    faults: list[ChainFault] = []
    prev_hash, expected_seq = GENESIS_HASH, 1
    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            faults.append(ChainFault(seq, f"gap: expected seq {expected_seq}"))
        if rec["prev_hash"] != prev_hash:
            faults.append(ChainFault(seq, "prev_hash does not match the previous record"))
        if link_hash(rec["prev_hash"], rec) != rec["hash"]:
            faults.append(ChainFault(seq, "content does not match its hash (edited)"))
        prev_hash, expected_seq = rec["hash"], seq + 1
    return faults
