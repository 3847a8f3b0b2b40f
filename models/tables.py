"""SQLAlchemy 2.0 ORM tables of the kiosk's local database.

Times are stored as ISO-8601 text with their UTC offset (`AwareDateTime`): SQLite has no
time-zone type, and a naive datetime in a subsidy record would be ambiguous evidence.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class AwareDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime kept as ISO-8601 text; naive values are refused."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: record times must carry their UTC offset")
        return value.isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)


class Base(DeclarativeBase):
    pass


class Elder(Base):
    """A person on the county roster (the platform's id is the key)."""

    __tablename__ = "elder"

    elder_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # Only the masked form (e.g. 142301********1234) is kept: the terminal never needs more.
    id_number_masked: Mapped[str] = mapped_column(String(32), default="")
    group_name: Mapped[str] = mapped_column(String(64), default="")  # 村民小组
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    pinyin_initials: Mapped[str] = mapped_column(String(32), default="")
    # active | suspended | deceased | moved — anything but active is refused a subsidised meal.
    status: Mapped[str] = mapped_column(String(16), default="active")
    agreement_signed: Mapped[bool] = mapped_column(Boolean, default=True)  # 助餐服务协议
    updated_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())

    cards: Mapped[list[Card]] = relationship(back_populates="elder")


class Card(Base):
    """A card bound to an elder; `uid` is in the roster's configured form."""

    __tablename__ = "card"

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    elder_id: Mapped[str] = mapped_column(ForeignKey("elder.elder_id"), index=True)
    bound_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())

    elder: Mapped[Elder] = relationship(back_populates="cards")


class MealRecord(Base):
    """One service delivered (a meal, or 助洁 cleaning): the evidence the subsidy is paid on."""

    __tablename__ = "meal_record"
    __table_args__ = (
        UniqueConstraint("elder_id", "service", "service_date", "slot", name="uq_one_per_slot"),
    )

    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUIDv7
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # gapless per device, from 1
    device_id: Mapped[str] = mapped_column(String(64))
    elder_id: Mapped[str] = mapped_column(ForeignKey("elder.elder_id"), index=True)
    service: Mapped[str] = mapped_column(String(16))  # meal | cleaning
    slot: Mapped[str] = mapped_column(String(16))  # breakfast | lunch | dinner | ...
    service_date: Mapped[dt.date] = mapped_column(Date, index=True)
    checked_in_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    method: Mapped[str] = mapped_column(String(16))  # card | face | card+face | manual
    card_uid: Mapped[str | None] = mapped_column(String(32))
    reader: Mapped[str | None] = mapped_column(String(64))
    distance: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    liveness: Mapped[str | None] = mapped_column(String(16))
    flags: Mapped[str] = mapped_column(Text, default="")  # comma-separated, sorted
    caregiver_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(64))  # why a manual check-in was needed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Ed25519 over `hash` by the device key, made in the inserting transaction (migration
    # 0004); records older than that were signed at first upload (EvidenceState).
    signature: Mapped[str | None] = mapped_column(String(128))


class EvidenceState(Base):
    """One row, written by migration 0004 and never changed (a trigger refuses it)."""

    __tablename__ = "evidence_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The chain head when signing at insert began: records up to it may be signed at upload.
    legacy_until_seq: Mapped[int] = mapped_column(Integer)
    legacy_until_hash: Mapped[str] = mapped_column(String(64))
    migrated_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())


class Outbox(Base):
    """Upload state of a record; the row lives until the platform has acknowledged it."""

    __tablename__ = "outbox"

    record_id: Mapped[str] = mapped_column(ForeignKey("meal_record.record_id"), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(AwareDateTime(), index=True)
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    # The platform's receipt naming this record: uploaded_at may only be set with it (trigger
    # outbox_ack_needs_receipt, migration 0006), and the receipt's signature is checked.
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("platform_receipt.id"))


class PlatformReceipt(Base):
    """A platform-signed acknowledgement, kept as received; append-only (triggers).

    kind "batch": the platform holds `record_ids` (a batch answer, or `recovery` for records
    restored from the platform's copy); "checkpoint": it accepted the chain up to (`seq`,
    `head_hash`); "legacy": stands for every acknowledgement made before migration 0005 (no
    signature; covers records up to `seq`)."""

    __tablename__ = "platform_receipt"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # batch | recovery | checkpoint | legacy
    device_id: Mapped[str] = mapped_column(String(64))
    server_time: Mapped[str] = mapped_column(String(40))  # exactly as signed
    record_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON, sorted
    seq: Mapped[int | None] = mapped_column(Integer, index=True)
    head_hash: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())


class FaceTemplate(Base):
    """One enrolled face of an elder. The 128-d encoding is stored only encrypted (AES-GCM,
    nonce + ciphertext + tag); the key lives outside the database file (kiosk/face/templates.py).
    Templates never leave the device and are never part of an upload."""

    __tablename__ = "face_template"
    # AUTOINCREMENT: ids are never reused, so (count, sum of ids) fingerprints the set.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    elder_id: Mapped[str] = mapped_column(ForeignKey("elder.elder_id"), index=True)
    encoding: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted, never plain floats
    key_id: Mapped[str] = mapped_column(String(16))  # which key encrypted it (a fingerprint)
    quality: Mapped[float] = mapped_column(Float)  # sharpness (variance of the Laplacian)
    face_px: Mapped[int] = mapped_column(Integer)  # face size at enrolment
    source: Mapped[str] = mapped_column(String(16))  # file | camera
    enrolled_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    consent_ref: Mapped[str] = mapped_column(String(128))  # the signed consent form's reference
    # The face detector whose box the encoding was aligned from (hog | yunet, migration 0009):
    # encodings from different detectors differ, so only templates of the configured one match.
    detector: Mapped[str] = mapped_column(String(8), default="hog", server_default="hog")


class AuditEvent(Base):
    """Things that are not records but must be traceable: unknown cards, refusals, imports."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(AwareDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON


def row_to_dict(row: Base) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}


# ----------------------------------------------------------------------------- caregiver UI
# (kiosk/touchscreen: caregivers.py, notices.py, ledgers.py; migration 0003)


class Caregiver(Base):
    """A caregiver (养老护理员) or the person in charge (负责人) of the meal point.

    The PIN is kept only as a salted scrypt hash (`scrypt$n$r$p$salt$hash`, hex). Failed PINs
    count up and lock the caregiver until `locked_until`; a good PIN resets the count."""

    __tablename__ = "caregiver"

    caregiver_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32), default="")
    role: Mapped[str] = mapped_column(String(16), default="caregiver")  # caregiver | in_charge
    pin_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(AwareDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())


class MenuItem(Base):
    """每周食谱: the dishes of one slot on one day (entered here or received from the platform)."""

    __tablename__ = "menu_item"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    slot: Mapped[str] = mapped_column(String(16), primary_key=True)
    dishes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="local")  # local | platform
    updated_at: Mapped[dt.datetime] = mapped_column(AwareDateTime())


class FoodSample(Base):
    """Daily food-safety ledger entry (留样台账): a sample of each meal kept, by whom, when."""

    __tablename__ = "food_sample"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_date: Mapped[dt.date] = mapped_column(Date, index=True)
    slot: Mapped[str] = mapped_column(String(16))
    dishes: Mapped[str] = mapped_column(Text, default="")
    sample_kept: Mapped[bool] = mapped_column(Boolean, default=True)
    caregiver_id: Mapped[str] = mapped_column(ForeignKey("caregiver.caregiver_id"))
    at: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    note: Mapped[str] = mapped_column(Text, default="")
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(AwareDateTime())


class SafetyInspection(Base):
    """Weekly safety inspection ledger (安全隐患排查台账): checklist, problems, fixes."""

    __tablename__ = "safety_inspection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week_start: Mapped[dt.date] = mapped_column(Date, index=True)  # the Monday
    checks: Mapped[str] = mapped_column(Text, default="{}")  # JSON {item: "ok" | "problem"}
    problems: Mapped[str] = mapped_column(Text, default="")
    fixed: Mapped[str] = mapped_column(Text, default="")
    caregiver_id: Mapped[str] = mapped_column(ForeignKey("caregiver.caregiver_id"))
    at: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(AwareDateTime())
