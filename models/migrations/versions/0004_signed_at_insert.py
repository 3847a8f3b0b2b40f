"""records signed at insert: evidence_state (legacy boundary) and signature triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:40:00

Until this revision a record was signed with the device key at its first upload, so a row
appended with the sqlite3 shell (correctly chained, no key needed) was signed by the daemon
and accepted as genuine. From here on the daemon signs each record in the transaction that
inserts it and the database refuses an unsigned insert. Records already stored keep their
signature (made at upload); those not yet uploaded (seq <= legacy_until_seq) may still be signed
once, at upload, exactly as before. Nothing else may ever set or change a signature.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TRIGGERS = (
    """CREATE TRIGGER meal_record_signed_at_insert BEFORE INSERT ON meal_record
    WHEN NEW.signature IS NULL OR length(NEW.signature) = 0
    BEGIN SELECT RAISE(ABORT, 'meal records are signed by the daemon at insert'); END""",
    """CREATE TRIGGER meal_record_signature_once BEFORE UPDATE OF signature ON meal_record
    WHEN OLD.signature IS NOT NULL
      OR OLD.seq > (SELECT legacy_until_seq FROM evidence_state WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'a record is signed once, when it is inserted'); END""",
    """CREATE TRIGGER evidence_state_one_row BEFORE INSERT ON evidence_state
    WHEN EXISTS (SELECT 1 FROM evidence_state)
    BEGIN SELECT RAISE(ABORT, 'evidence_state is written once, by migration 0004'); END""",
    """CREATE TRIGGER evidence_state_fixed BEFORE UPDATE ON evidence_state
    BEGIN SELECT RAISE(ABORT, 'evidence_state is written once, by migration 0004'); END""",
    """CREATE TRIGGER evidence_state_kept BEFORE DELETE ON evidence_state
    BEGIN SELECT RAISE(ABORT, 'evidence_state is written once, by migration 0004'); END""",
)
TRIGGER_NAMES = (
    "meal_record_signed_at_insert",
    "meal_record_signature_once",
    "evidence_state_one_row",
    "evidence_state_fixed",
    "evidence_state_kept",
)


def upgrade() -> None:
    op.create_table(
        "evidence_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legacy_until_seq", sa.Integer(), nullable=False),
        sa.Column("legacy_until_hash", sa.String(length=64), nullable=False),
        sa.Column("migrated_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    conn = op.get_bind()
    head = conn.execute(
        sa.text("SELECT seq, hash FROM meal_record ORDER BY seq DESC LIMIT 1")
    ).first()
    seq, head_hash = (int(head[0]), str(head[1])) if head else (0, "0" * 64)
    conn.execute(
        sa.text(
            "INSERT INTO evidence_state (id, legacy_until_seq, legacy_until_hash, migrated_at) "
            "VALUES (1, :seq, :hash, :at)"
        ),
        {"seq": seq, "hash": head_hash, "at": dt.datetime.now(dt.UTC).isoformat()},
    )
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("evidence_state")
