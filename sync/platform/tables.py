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
    String,
    Text,
    UniqueConstraint,
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
    """Something a county auditor must look at: gap, edit, fork, forgery, id reuse."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int | None] = mapped_column(Integer)
    record_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str] = mapped_column(Text, default="")


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
