"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 18:00:59.969626
"""

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The database itself refuses to rewrite a chained record or to drop one the platform has not
# acknowledged, whatever code (or hand-run sqlite3 session) asks it to.
GUARD_TRIGGERS = (
    """CREATE TRIGGER meal_record_append_only
    BEFORE UPDATE OF record_id, seq, device_id, elder_id, service, slot, service_date,
        checked_in_at, method, card_uid, reader, distance, margin, liveness, flags,
        caregiver_id, reason, prev_hash, hash ON meal_record
    BEGIN SELECT RAISE(ABORT, 'meal records are append-only'); END""",
    """CREATE TRIGGER meal_record_keep_unacked BEFORE DELETE ON meal_record
    WHEN NOT EXISTS (SELECT 1 FROM outbox
                     WHERE record_id = OLD.record_id AND uploaded_at IS NOT NULL)
    BEGIN SELECT RAISE(ABORT, 'meal record not yet acknowledged by the platform'); END""",
    """CREATE TRIGGER outbox_keep_unacked BEFORE DELETE ON outbox
    WHEN OLD.uploaded_at IS NULL
    BEGIN SELECT RAISE(ABORT, 'outbox row not yet acknowledged by the platform'); END""",
)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)

    op.create_table(
        "elder",
        sa.Column("elder_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("id_number_masked", sa.String(length=32), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("contact_phone", sa.String(length=32), nullable=False),
        sa.Column("pinyin_initials", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agreement_signed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.PrimaryKeyConstraint("elder_id"),
    )
    op.create_table(
        "card",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("elder_id", sa.String(length=64), nullable=False),
        sa.Column("bound_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["elder_id"],
            ["elder.elder_id"],
        ),
        sa.PrimaryKeyConstraint("uid"),
    )
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_elder_id"), ["elder_id"], unique=False)

    op.create_table(
        "meal_record",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("elder_id", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.String(length=16), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("checked_in_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("card_uid", sa.String(length=32), nullable=True),
        sa.Column("reader", sa.String(length=64), nullable=True),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("liveness", sa.String(length=16), nullable=True),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("caregiver_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["elder_id"],
            ["elder.elder_id"],
        ),
        sa.PrimaryKeyConstraint("record_id"),
        sa.UniqueConstraint("elder_id", "service", "service_date", "slot", name="uq_one_per_slot"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("meal_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meal_record_elder_id"), ["elder_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_meal_record_service_date"), ["service_date"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("uploaded_at", models.tables.AwareDateTime(length=40), nullable=True),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["meal_record.record_id"],
        ),
        sa.PrimaryKeyConstraint("record_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_uploaded_at"), ["uploaded_at"], unique=False)

    for statement in GUARD_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name in ("meal_record_append_only", "meal_record_keep_unacked", "outbox_keep_unacked"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_uploaded_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("meal_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meal_record_service_date"))
        batch_op.drop_index(batch_op.f("ix_meal_record_elder_id"))

    op.drop_table("meal_record")
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_elder_id"))

    op.drop_table("card")
    op.drop_table("elder")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))

    op.drop_table("audit_event")
