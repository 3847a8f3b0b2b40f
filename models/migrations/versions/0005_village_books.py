"""the village's books (公示): append-only, signed book entries in their own chain, with an outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:50:00
"""

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRIGGERS = (
    """CREATE TRIGGER book_entry_signed_at_insert BEFORE INSERT ON book_entry
    WHEN NEW.signature IS NULL OR length(NEW.signature) = 0
    BEGIN SELECT RAISE(ABORT, 'book entries are signed by the daemon at insert'); END""",
    # Corrections are new entries: nothing of an entry ever changes.
    """CREATE TRIGGER book_entry_append_only BEFORE UPDATE ON book_entry
    BEGIN SELECT RAISE(ABORT, 'book entries are append-only; correct with a new entry'); END""",
    """CREATE TRIGGER book_entry_keep_unacked BEFORE DELETE ON book_entry
    WHEN NOT EXISTS (SELECT 1 FROM book_outbox
                     WHERE entry_id = OLD.entry_id AND uploaded_at IS NOT NULL)
    BEGIN SELECT RAISE(ABORT, 'book entry not yet acknowledged by the platform'); END""",
    """CREATE TRIGGER book_outbox_keep_unacked BEFORE DELETE ON book_outbox
    WHEN OLD.uploaded_at IS NULL
    BEGIN SELECT RAISE(ABORT, 'book outbox row not yet acknowledged by the platform'); END""",
)


def upgrade() -> None:
    op.create_table(
        "book_entry",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("corrects", sa.String(length=36), nullable=True),
        sa.Column("caregiver_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
        sa.UniqueConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    op.create_index("ix_book_entry_kind", "book_entry", ["kind"])
    op.create_index("ix_book_entry_entry_date", "book_entry", ["entry_date"])
    op.create_table(
        "book_outbox",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("uploaded_at", models.tables.AwareDateTime(length=40), nullable=True),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["book_entry.entry_id"]),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index("ix_book_outbox_uploaded_at", "book_outbox", ["uploaded_at"])
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for name in (
        "book_outbox_keep_unacked",
        "book_entry_keep_unacked",
        "book_entry_append_only",
        "book_entry_signed_at_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("book_outbox")
    op.drop_table("book_entry")
