"""The reference platform's own tables (SQLite or PostgreSQL), separate from the kiosk's.

Times are ISO-8601 text with offset, like the kiosk's, so both backends store the same thing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class PlatformBase(DeclarativeBase):
    pass


class Device(PlatformBase):
    __tablename__ = "device"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    point_id: Mapped[str] = mapped_column(String(64), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 raw Ed25519
    registered_at: Mapped[str] = mapped_column(String(40))
    # "active" or "retired"; a retired device's token and key are refused from then on.
    status: Mapped[str] = mapped_column(String(16), default="active")
    # The enrolment code (its SHA-256) that registered the current key, for retry and audit.
    enrolled_with: Mapped[str | None] = mapped_column(String(64))
    # First time the device authenticated with its token; until then a lost registration
    # answer may be retried with the same code and key (issue 12, point 2).
    first_seen_at: Mapped[str | None] = mapped_column(String(40))
    # Completeness bookkeeping: every seq 1..contiguous_seq has been held at some point, and
    # held_count records were ever accepted. Fewer rows than that means rows were deleted.
    contiguous_seq: Mapped[int] = mapped_column(Integer, default=0)
    held_count: Mapped[int] = mapped_column(Integer, default=0)


class DeviceKeyRow(PlatformBase):
    """Every key a device has had: records with seq in [from_seq, until_seq] verify with it."""

    __tablename__ = "device_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    from_seq: Mapped[int] = mapped_column(Integer)
    until_seq: Mapped[int | None] = mapped_column(Integer)  # None: the current key
    added_at: Mapped[str] = mapped_column(String(40))
    retired_at: Mapped[str | None] = mapped_column(String(40))


class MealPoint(PlatformBase):
    """A meal point (助餐点) as registered by the county, in one township."""

    __tablename__ = "meal_point"

    point_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    township: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(64))


class Credential(PlatformBase):
    """A person's credential on the platform: county administrator or township operator.

    Only the SHA-256 of the token is kept; the token is shown once when created."""

    __tablename__ = "credential"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # "admin" | "operator"
    township: Mapped[str | None] = mapped_column(String(64))  # operators only
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(64))
    disabled_at: Mapped[str | None] = mapped_column(String(40))


class EnrolmentCode(PlatformBase):
    """A one-time code that lets one terminal register at one meal point (or re-key one device)."""

    __tablename__ = "enrolment_code"

    code_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    point_id: Mapped[str] = mapped_column(ForeignKey("meal_point.point_id"), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64))  # set: a re-key code for it
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str] = mapped_column(String(40))
    used_at: Mapped[str | None] = mapped_column(String(40))
    used_by_device: Mapped[str | None] = mapped_column(String(64))


class AuditEvent(PlatformBase):
    """Who did what on the platform: credentials, points, codes, enrolments, retirements,
    re-keys, roster publications. Append-only: no route edits or deletes these rows."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))  # credential name, or "device:<id>"
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    point_id: Mapped[str | None] = mapped_column(String(64), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class Record(PlatformBase):
    """A record as received: the canonical body (what the hash covers) plus indexed columns."""

    __tablename__ = "record"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_record_device_seq"),
        Index("ix_record_device_day", "device_id", "service_date"),
    )

    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"))
    seq: Mapped[int] = mapped_column(Integer)
    service_date: Mapped[dt.date] = mapped_column(Date)
    elder_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(16))
    flags: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)  # canonical JSON of the chained fields
    received_at: Mapped[str] = mapped_column(String(40))
    # The device signature: True verified, False forged (alerted), None not checked yet (the
    # deferred verifier's queue). Rows from before the column were verified at ingest.
    signature_ok: Mapped[bool | None] = mapped_column(Boolean, default=True, nullable=True)


class MealClaim(PlatformBase):
    """The settlement's narrow copy of every stored record, written in the same transaction as
    the record (ingest; the deferred verifier keeps `signature_ok` in step).

    `kind` is what the record itself says: 0 clean, 1 manual check-in, 2 flagged tap; 3 late:
    it arrived after its month was closed.
    `claimed`: the first clean record the platform stored for an elder, service, slot and day
    county-wide holds the slot (a partial unique index: two concurrent transactions claiming
    the same slot conflict, and the loser's retry sees the claim); a later clean record of the
    slot is stored unclaimed and marks the claim `contested`: the settlement ranks that slot's
    records (the roaming duplicate). Roster status and the signature are judged when the month
    is settled, so a status change or a forgery found later still counts. ~100 bytes a row
    instead of ~710: the settlement aggregates this instead of ranking the wide `record` table
    (docs/scale.md)."""

    __tablename__ = "meal_claim"
    __table_args__ = (
        Index(
            "uq_meal_claim_slot",
            "elder_id",
            "service",
            "slot",
            "service_date",
            unique=True,
            postgresql_where=text("claimed"),
            sqlite_where=text("claimed"),
        ),
        # The records that arrived after their month was closed (kind 3): a handful.
        Index(
            "ix_meal_claim_late",
            "service_date",
            postgresql_where=text("kind = 3"),
            sqlite_where=text("kind = 3"),
        ),
    )

    # The month's rows are one range of the primary key (the settlement's scan).
    service_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    point_id: Mapped[str] = mapped_column(String(64))
    elder_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(16))
    kind: Mapped[int] = mapped_column(SmallInteger)
    claimed: Mapped[bool] = mapped_column(Boolean)
    # On a claim: another clean record of its slot arrived (set by that record's ingest), so
    # the settlement ranks the slot's records instead of counting the claim straight.
    contested: Mapped[bool] = mapped_column(Boolean, default=False)
    flags: Mapped[str] = mapped_column(Text, default="")
    signature_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Only where the settlement ranks or lists the record (NULL on a plain claim, most rows):
    # when the platform received it (unclaimed records and contested claims) ...
    received_at: Mapped[str | None] = mapped_column(String(40))
    # ... and a manual check-in's reason and caregiver (listed with the exception).
    reason: Mapped[str | None] = mapped_column(String(64))
    caregiver_id: Mapped[str | None] = mapped_column(String(64))


class CheckpointRow(PlatformBase):
    __tablename__ = "checkpoint"
    __table_args__ = (Index("ix_checkpoint_device_seq", "device_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"))
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    made_at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[str] = mapped_column(String(40))


class Alert(PlatformBase):
    """Something a county auditor must look at: gap, edit, fork, forgery, id reuse, hole.

    `evidence` is JSON the console shows (the checkpoint that commits to missing records, the
    missing seqs, the conflicting hashes...)."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    point_id: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int | None] = mapped_column(Integer)
    record_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="{}")


class RosterEntry(PlatformBase):
    __tablename__ = "roster_entry"
    __table_args__ = (Index("ix_roster_point_version", "point_id", "version"),)

    point_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    elder_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(32), default="")
    card_uid: Mapped[str | None] = mapped_column(String(32))
    group_name: Mapped[str] = mapped_column(String(64), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(16))
    agreement_signed: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer)  # roster version that last changed this row


class RosterVersion(PlatformBase):
    __tablename__ = "roster_version"

    point_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class SafetyEntryRow(PlatformBase):
    """Safety ledger entries (留样, weekly inspection) from heartbeats, one row per key:
    kind "food_sample" keyed "2026-12-02/lunch", kind "inspection" keyed by the week's Monday."""

    __tablename__ = "safety_entry"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    received_at: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)


class HeartbeatRow(PlatformBase):
    """The latest heartbeat of each device (history is the log's job)."""

    __tablename__ = "heartbeat"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)


class BookEntryRow(PlatformBase):
    """An entry of a meal point's books (purchases, donations, fees, patrols...), as received."""

    __tablename__ = "book_entry"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_book_device_seq"),)

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    point_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    entry_date: Mapped[dt.date] = mapped_column(Date, index=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    corrects: Mapped[str | None] = mapped_column(String(36))
    caregiver_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(40))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[str] = mapped_column(String(40))


# ----------------------------------------------------------------------------- county console


class ConsoleSession(PlatformBase):
    """A login to the county console: the cookie carries the id (HMAC-signed with a secret
    derived from the platform key); only its SHA-256 is stored, so logout ends it here."""

    __tablename__ = "console_session"

    sid_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)  # the credential's name
    created_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str] = mapped_column(String(40))


class AlertAction(PlatformBase):
    """The trail of an alert: acknowledged, resolved or reopened, by whom, when, with a note.
    Append-only; an alert's state is its latest action."""

    __tablename__ = "alert_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # "ack" | "resolve" | "reopen"
    note: Mapped[str] = mapped_column(Text, default="")


class SubsidyRate(PlatformBase):
    """The subsidy per meal (or 助洁 visit) of a service and slot from a date on; a new row from
    a later date changes it, earlier rows stay as history. Amount is decimal text (yuan)."""

    __tablename__ = "subsidy_rate"
    __table_args__ = (UniqueConstraint("service", "slot", "effective_from", name="uq_rate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(16))  # a slot name, or "*" for every slot
    effective_from: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[str] = mapped_column(String(20))
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")


class SettlementMonth(PlatformBase):
    """A closed month: its settlement is frozen in settlement_line / settlement_exception and
    signed with the platform key (over `digest`, the SHA-256 of the canonical document)."""

    __tablename__ = "settlement_month"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    first_day: Mapped[dt.date] = mapped_column(Date)
    last_day: Mapped[dt.date] = mapped_column(Date)
    closed_at: Mapped[str] = mapped_column(String(40))
    closed_by: Mapped[str] = mapped_column(String(64))
    total_meals: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[str] = mapped_column(String(24))
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(String(64))


class SettlementLine(PlatformBase):
    """One frozen line of a closed month: subsidised meals of one elder at one point."""

    __tablename__ = "settlement_line"
    __table_args__ = (Index("ix_settlement_line_month_point", "month", "point_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))
    point_id: Mapped[str] = mapped_column(String(64))
    elder_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(16))
    rate: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[str] = mapped_column(String(24))


class SettlementException(PlatformBase):
    """A record of a closed month that was not subsidised automatically, and why."""

    __tablename__ = "settlement_exception"
    __table_args__ = (Index("ix_settlement_exception_month_point", "month", "point_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))
    record_id: Mapped[str] = mapped_column(String(36), index=True)
    point_id: Mapped[str] = mapped_column(String(64))
    elder_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(Text, default="")
