"""The hash chain that makes local edits evident.

Each record's hash covers its content and the previous record's hash, so changing, removing or
re-ordering any stored record breaks every link after it. The function is pure and lives with
the data; it runs inside the insert transaction (see `models.records`), as does the signature
over the hash, made by a callable the kiosk passes in: the key and the cryptography stay in
sync/, and `verify_chain` takes the check as a callable for the same reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
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


# (record hash, base64 signature) -> does the device key verify it?
SignatureCheck = Callable[[str, str], bool]


def verify_chain(
    records: Iterable[Mapping[str, Any]],
    signature_ok: SignatureCheck | None = None,
    legacy_until_seq: int = 0,
    after: tuple[int, str] = (0, GENESIS_HASH),
) -> list[ChainFault]:
    """Check records (ordered by seq, starting at 1) for gaps, broken links and edits.

    With `signature_ok`, also that each record carries a valid device signature: records after
    `legacy_until_seq` were signed in their inserting transaction, so a missing or invalid
    signature means the row was written by something other than the daemon. Legacy records
    may still lack one (they are signed at upload) but a present one must verify. `after`
    (seq, hash) continues from a record already verified instead of from the genesis.
    """
    faults: list[ChainFault] = []
    prev_hash, expected_seq = after[1], after[0] + 1
    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            faults.append(ChainFault(seq, f"gap: expected seq {expected_seq}"))
        if rec["prev_hash"] != prev_hash:
            faults.append(ChainFault(seq, "prev_hash does not match the previous record"))
        if link_hash(rec["prev_hash"], rec) != rec["hash"]:
            faults.append(ChainFault(seq, "content does not match its hash (edited)"))
        if signature_ok is not None:
            signature = rec.get("signature")
            if not signature:
                if seq > legacy_until_seq:
                    faults.append(ChainFault(seq, "unsigned: not written by the daemon"))
            elif not signature_ok(rec["hash"], signature):
                faults.append(ChainFault(seq, "signature does not verify with the device key"))
        prev_hash, expected_seq = rec["hash"], seq + 1
    return faults


# ----------------------------------------------------------------------------- the books' chain
# The village's books (models/books.py) are chained the same way, in a chain of their own.

# A different prefix from the meal chain's links: a signature over one chain's hash can never
# stand for an entry of the other.
BOOK_DOMAIN = b"haolinju-book-v1\n"
BOOK_CHAINED_FIELDS = (
    "entry_id",
    "seq",
    "device_id",
    "kind",
    "entry_date",
    "body",
    "corrects",
    "caregiver_id",
    "created_at",
)


def book_link_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The entry's link: SHA-256 over the domain, the previous hash and the chained fields."""
    body = {name: _canonical(fields.get(name)) for name in BOOK_CHAINED_FIELDS}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(BOOK_DOMAIN + prev_hash.encode() + b"\n" + text.encode()).hexdigest()


def verify_books(entries: Iterable[Mapping[str, Any]]) -> list[ChainFault]:
    """Check entries (ordered by seq, from 1) for gaps, broken links and edits."""
    faults: list[ChainFault] = []
    prev_hash, expected = GENESIS_HASH, 1
    for entry in entries:
        seq = entry["seq"]
        if seq != expected:
            faults.append(ChainFault(seq, f"gap: expected seq {expected}"))
        if entry["prev_hash"] != prev_hash:
            faults.append(ChainFault(seq, "prev_hash does not match the previous entry"))
        if book_link_hash(entry["prev_hash"], entry) != entry["hash"]:
            faults.append(ChainFault(seq, "content does not match its hash (edited)"))
        prev_hash, expected = entry["hash"], seq + 1
    return faults
