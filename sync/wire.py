"""The wire protocol between a kiosk and the county platform: the one module both sides share.

Everything that crosses the link is one of these pydantic models, serialised as JSON (record
batches gzip-compressed). The exact bytes that get hashed and signed are defined here too, so a
vendor implementing the real platform needs this file (and models/chain.py, the pure
hash-chain definition it re-exports) and nothing else of the kiosk's.

Signed messages are domain-separated (`haolinju-<kind>-v1\\n...`) so a signature made for one
purpose can never be replayed as another.

Privacy: no model here has a field for face templates, encodings or images; a test walks every
model's schema to keep it that way.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from models.chain import (
    BOOK_CHAINED_FIELDS,
    CHAINED_FIELDS,
    GENESIS_HASH,
    book_link_hash,
    canonical_bytes,
    link_hash,
)

__all__ = [
    "BOOK_CHAINED_FIELDS",
    "CHAINED_FIELDS",
    "GENESIS_HASH",
    "book_link_hash",
    "canonical_bytes",
    "link_hash",
]

PROTOCOL_VERSION: Final = 1
HEX64 = r"^[0-9a-f]{64}$"
# Records are short (about 600 bytes of JSON); these bounds only stop absurd payloads.
MAX_BATCH = 5000


class Wire(BaseModel):
    # Unknown fields are refused: a payload we do not fully understand is not acted upon.
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- records


class WireRecord(Wire):
    """One meal/cleaning record as the kiosk stored it, with its chain link and signature."""

    record_id: str = Field(min_length=1, max_length=36)
    seq: int = Field(ge=1)
    device_id: str = Field(min_length=1, max_length=64)
    elder_id: str = Field(min_length=1, max_length=64)
    service: str = Field(max_length=16)
    slot: str = Field(max_length=16)
    service_date: dt.date
    checked_in_at: AwareDatetime
    method: str = Field(max_length=16)
    card_uid: str | None = Field(default=None, max_length=32)
    reader: str | None = Field(default=None, max_length=64)
    distance: float | None = None
    margin: float | None = None
    liveness: str | None = Field(default=None, max_length=16)
    flags: str = Field(default="", max_length=512)
    caregiver_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(pattern=HEX64)
    hash: str = Field(pattern=HEX64)
    signature: str = Field(min_length=1, max_length=128)  # base64 Ed25519 over the hash

    def chained(self) -> dict[str, Any]:
        """The fields the hash covers, as Python values (what `link_hash` expects)."""
        return {name: getattr(self, name) for name in CHAINED_FIELDS}

    def computed_hash(self) -> str:
        return link_hash(self.prev_hash, self.chained())


class RecordBatch(Wire):
    """POST /v1/records (body gzip-compressed, `Content-Encoding: gzip`)."""

    protocol: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(min_length=1, max_length=64)
    sent_at: AwareDatetime
    records: list[WireRecord] = Field(max_length=MAX_BATCH)


class Rejection(Wire):
    record_id: str
    reason: str = Field(max_length=500)


class BatchResult(Wire):
    """The platform's answer to a batch: every record id lands in exactly one list."""

    accepted: list[str]
    duplicate: list[str]
    rejected: list[Rejection]
    server_time: AwareDatetime
    # The platform's Ed25519 signature over receipt_message(): the kiosk may mark a record
    # uploaded (and its outbox row deletable) only with this receipt for it (issue 12.7).
    receipt: str | None = Field(default=None, max_length=128)


# ----------------------------------------------------------------------------- the village's books


# The kinds of entry in the village's books (kiosk/touchscreen/books.py says what each holds).
BOOK_KINDS: Final = (
    "expense",
    "income",
    "donation",
    "meal_fee",
    "cleaning_procedure",
    "health_check",
    "patrol",
    "notice_posted",
)


class WireBookEntry(Wire):
    """One entry of the village's books (models/books.py): its own chain, signed at insert."""

    entry_id: str = Field(min_length=1, max_length=36)
    seq: int = Field(ge=1, le=2**62)
    device_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=24)
    entry_date: dt.date
    body: str = Field(max_length=8000)  # canonical JSON, as hashed
    corrects: str | None = Field(default=None, max_length=36)
    caregiver_id: str = Field(min_length=1, max_length=64)
    created_at: AwareDatetime
    prev_hash: str = Field(pattern=HEX64)
    hash: str = Field(pattern=HEX64)
    signature: str = Field(min_length=1, max_length=128)  # base64 Ed25519 over record_message

    def computed_hash(self) -> str:
        return book_link_hash(self.prev_hash, {n: getattr(self, n) for n in BOOK_CHAINED_FIELDS})


class BooksHead(Wire):
    """GET /v1/books/head: the last entry of this device's books the platform holds."""

    seq: int = Field(ge=0)
    hash: str = Field(pattern=HEX64)


class BookBatch(Wire):
    """POST /v1/books: entries in seq order; the answer is a BatchResult over entry ids."""

    protocol: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(min_length=1, max_length=64)
    sent_at: AwareDatetime
    entries: list[WireBookEntry] = Field(max_length=500)


# ----------------------------------------------------------------------------- checkpoints


class Checkpoint(Wire):
    """POST /v1/checkpoints: the device commits to its chain head, signed with its key.

    Once a checkpoint has left the device, rewriting any record at or below `seq` is evident
    to the platform even before those records are uploaded.
    """

    device_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    head_hash: str = Field(pattern=HEX64)
    made_at: AwareDatetime
    signature: str = Field(min_length=1, max_length=128)


class CheckpointResult(Wire):
    status: Literal["ok", "conflict"]
    detail: str = ""
    server_time: AwareDatetime
    # For "ok": the platform's signature over checkpoint_ack_message(); the kiosk keeps the
    # newest and refuses to record on a chain shorter than it (rolled back, issue 12.8).
    ack: str | None = Field(default=None, max_length=128)


class AckedCheckpoint(Wire):
    """GET /v1/checkpoints/last: the newest checkpoint of this device the platform accepted."""

    device_id: str
    seq: int = Field(ge=0)
    head_hash: str = Field(pattern=HEX64)
    server_time: AwareDatetime
    ack: str = Field(min_length=1, max_length=128)


class HeldRecord(Wire):
    """One record as the platform holds it: the canonical body it verified, and the chain."""

    seq: int = Field(ge=1)
    record_id: str
    body: str  # canonical_bytes() of the chained fields, as the platform stored them
    prev_hash: str = Field(pattern=HEX64)
    hash: str = Field(pattern=HEX64)
    signature: str = Field(min_length=1, max_length=128)


class HeldRecords(Wire):
    """GET /v1/records/mine?after_seq=N: the platform's copy of this device's records, for
    `kiosk recover --from-platform`, with a receipt over the ids like a batch answer."""

    device_id: str
    records: list[HeldRecord]
    server_time: AwareDatetime
    receipt: str = Field(min_length=1, max_length=128)


# ----------------------------------------------------------------------------- reconciliation


class DayCount(Wire):
    service_date: dt.date
    count: int = Field(ge=0)
    head_seq: int | None = None  # highest seq of that day on the platform
    head_hash: str | None = None


class ReconcileReport(Wire):
    """GET /v1/reconcile?from=YYYY-MM-DD&to=YYYY-MM-DD, for the authenticated device."""

    device_id: str
    days: list[DayCount]
    server_time: AwareDatetime


class DaySeqs(Wire):
    """GET /v1/reconcile/{date}/seqs: which of this device's records the platform holds."""

    service_date: dt.date
    seqs: list[int]


# ----------------------------------------------------------------------------- roster

ElderStatus = Literal["active", "suspended", "deceased", "moved", "removed"]


class RosterElder(Wire):
    elder_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    id_number_masked: str = Field(default="", max_length=32)
    card_uid: str | None = Field(default=None, max_length=32)
    group: str = Field(default="", max_length=64)
    contact_phone: str = Field(default="", max_length=32)
    # Anything but "active" is refused a subsidised meal by the check-in rules; an elder
    # taken off the roster (died, moved, suspended) arrives as a row with that status.
    status: ElderStatus = "active"
    agreement_signed: bool = True


class RosterPayload(Wire):
    """The signed content of a roster delta: everything changed after version `since`."""

    point_id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    since: int = Field(ge=0)
    issued_at: AwareDatetime
    elders: list[RosterElder]


class SignedRoster(Wire):
    """GET /v1/roster?since=N: the payload as the exact JSON text that was signed.

    Keeping the payload as text (not a nested object) means the kiosk checks the signature on
    the bytes the platform signed, before parsing anything inside.
    """

    payload: str
    signature: str = Field(min_length=1, max_length=128)


class CountyCardsPayload(Wire):
    """GET /v1/county-cards (signed like the roster, `SignedRoster` envelope): every active card
    of the county as [card number, elder id, home point id, name], sorted by card; `points`
    names the home points (roaming elders, 全城通). `version` rises with every roster
    published in the county (the sum of the points' roster versions), so a kiosk can refuse an
    older signed list replayed to it (a rollback to cards since withdrawn)."""

    version: int = Field(ge=0)
    issued_at: AwareDatetime
    points: dict[str, str]
    cards: list[tuple[str, str, str, str]]


class RosterPublish(Wire):
    """POST /v1/admin/roster (platform operator): upsert elders of one point, bump version."""

    point_id: str = Field(min_length=1, max_length=64)
    elders: list[RosterElder]


class RosterPublished(Wire):
    point_id: str
    version: int


# ----------------------------------------------------------------------------- devices, heartbeat


class DeviceRegistration(Wire):
    """POST /v1/devices (platform operator, at provisioning)."""

    device_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    point_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=40, max_length=64)  # base64 raw Ed25519 public key


class DeviceRegistered(Wire):
    device_id: str
    token: str  # the bearer token the device authenticates with; shown once


class Location(Wire):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class FoodSampleEntry(Wire):
    """One 留样 entry: a sample of a meal's dishes kept (or why not), by which caregiver."""

    service_date: dt.date
    slot: str = Field(max_length=16)
    dishes: str = Field(max_length=500)
    sample_kept: bool
    sampled_at: AwareDatetime
    stored_until: AwareDatetime
    caregiver_id: str = Field(max_length=64)
    note: str = Field(default="", max_length=500)


class InspectionEntry(Wire):
    """One weekly safety inspection: item -> "ok" | "problem", what was found and fixed."""

    week_start: dt.date  # the Monday
    checks: dict[str, str] = Field(max_length=20)
    problems: str = Field(default="", max_length=500)
    fixed: str = Field(default="", max_length=500)
    caregiver_id: str = Field(max_length=64)
    inspected_at: AwareDatetime


class SafetyLedger(Wire):
    """The safety ledgers (安监台账) of the last days; the platform keeps entries by their key
    (date + slot, week), so the same entry sent again replaces itself."""

    food_sample_today: bool
    inspection_this_week: bool
    open_problems: int = Field(ge=0)  # problems found and not (yet) written as fixed
    food_samples: list[FoodSampleEntry] = Field(default_factory=list, max_length=100)
    inspections: list[InspectionEntry] = Field(default_factory=list, max_length=10)


class ServingSlot(Wire):
    """One serving window of the point as configured on the terminal (config.yaml meal.slots,
    cleaning.slots), in the point's local time: the county's silent-point alert uses it."""

    service: Literal["meal", "cleaning"]
    slot: str = Field(min_length=1, max_length=16)
    start: dt.time
    end: dt.time

    @model_validator(mode="after")
    def _end_after_start(self) -> ServingSlot:
        if self.end <= self.start:
            raise ValueError(f"slot {self.slot}: end {self.end} must be after start {self.start}")
        return self


class Heartbeat(Wire):
    """POST /v1/heartbeat: how the terminal is doing. No personal data beyond caregiver ids."""

    device_id: str
    sent_at: AwareDatetime
    software_version: str = Field(max_length=32)
    location: Location | None = None
    caregivers_on_duty: list[str] = Field(default_factory=list)
    headcount: dict[str, int] = Field(default_factory=dict)  # "meal/lunch" -> count today
    queue_depth: int = Field(ge=0)
    rejected: int = Field(ge=0)
    oldest_unsent_age_s: float | None = None
    clock_offset_s: float | None = None  # platform time minus device time, last measured
    readers: dict[str, str] = Field(default_factory=dict)  # name -> state
    camera: str = "unknown"
    chain_head_seq: int = Field(ge=0)
    safety: SafetyLedger | None = None  # optional: kiosks before the ledgers do not send it
    # The point's serving windows (optional: kiosks before them do not send any).
    serving_slots: list[ServingSlot] = Field(default_factory=list, max_length=8)


class HeartbeatAck(Wire):
    server_time: AwareDatetime


class ErrorBody(Wire):
    detail: str


# ----------------------------------------------------------------------------- signing


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 (binascii.Error on anything else)."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def record_message(record_hash: str) -> bytes:
    """What a device signs for a record: its chain hash, which covers content and prev_hash."""
    return b"haolinju-record-v1\n" + record_hash.encode("ascii")


def checkpoint_message(device_id: str, seq: int, head_hash: str, made_at: dt.datetime) -> bytes:
    stamp = made_at.isoformat(timespec="microseconds")
    return f"haolinju-checkpoint-v1\n{device_id}\n{seq}\n{head_hash}\n{stamp}".encode()


def enrolment_message(device_id: str, point_id: str, code: str) -> bytes:
    """What a terminal signs to prove it holds the key it enrols (a repeated enrolment needs it)."""
    return f"haolinju-enrolment-v1\n{device_id}\n{point_id}\n{code}".encode()


def receipt_message(device_id: str, server_time: dt.datetime, record_ids: list[str]) -> bytes:
    """What the platform signs when it acknowledges records: it holds exactly these ids."""
    stamp = server_time.isoformat(timespec="microseconds")
    return f"haolinju-receipt-v1\n{device_id}\n{stamp}\n".encode() + "\n".join(
        sorted(record_ids)
    ).encode("ascii")


def book_receipt_message(device_id: str, server_time: dt.datetime, entry_ids: list[str]) -> bytes:
    """What the platform signs when it holds these book entries (never a meal receipt)."""
    stamp = server_time.isoformat(timespec="microseconds")
    return f"haolinju-book-receipt-v1\n{device_id}\n{stamp}\n".encode() + "\n".join(
        sorted(entry_ids)
    ).encode("ascii")


def checkpoint_ack_message(
    device_id: str, seq: int, head_hash: str, server_time: dt.datetime
) -> bytes:
    """What the platform signs when it accepts a checkpoint: this device's chain reached seq."""
    stamp = server_time.isoformat(timespec="microseconds")
    return f"haolinju-checkpoint-ack-v1\n{device_id}\n{seq}\n{head_hash}\n{stamp}".encode()


def roster_message(payload_text: str) -> bytes:
    return b"haolinju-roster-v1\n" + payload_text.encode("utf-8")


def county_cards_message(payload_text: str) -> bytes:
    return b"haolinju-county-cards-v1\n" + payload_text.encode("utf-8")


def county_cards_etag(version: int, signature_b64: str) -> str:
    """The strong ETag of a signed county card list: its version and a digest of its signature.
    The signature covers the exact payload bytes (Ed25519 is deterministic, and the platform
    builds one payload per content), so equal tags mean byte-equal lists; the kiosk works out
    the tag of the list it holds the same way and sends it as If-None-Match."""
    digest = hashlib.sha256(signature_b64.encode("ascii")).hexdigest()[:32]
    return f'"{version}-{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match against one tag (RFC 9110 13.1.2: a list, `*`, weak comparison)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key from base64; ValueError if it is not one."""
    try:
        raw = b64decode(text)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"public key is not base64: {exc}") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    """True only for a valid signature; malformed signatures are simply invalid."""
    try:
        public_key.verify(b64decode(signature_b64), message)
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True
