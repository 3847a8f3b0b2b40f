"""outbox guarded by platform receipts: platform_receipt, outbox.receipt_id, triggers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:30:00

Until this revision anyone with the sqlite3 shell could mark a pending record as uploaded and
then delete it and its outbox row: the guards only asked whether uploaded_at was set. From here
on uploaded_at can only be set together with a receipt from the platform that names the record
(kept in platform_receipt, append-only); the kiosk verifies each receipt's signature with the
platform key (sync/evidence.py), so a receipt forged in the shell is evident. Rows acknowledged
before this revision point to one "legacy" receipt covering records up to the highest seq then
acknowledged.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RECEIPT_COVERS = """EXISTS (SELECT 1 FROM platform_receipt r WHERE r.id = NEW.receipt_id AND (
        (r.kind IN ('batch', 'recovery') AND instr(r.record_ids, '"' || NEW.record_id || '"') > 0)
        OR (r.kind = 'legacy' AND (SELECT seq FROM meal_record m
                                   WHERE m.record_id = NEW.record_id) <= r.seq)))"""
RECEIPT_MISSING = (
    "RAISE(ABORT, 'an outbox row is marked uploaded only with the platform receipt naming it')"
)

TRIGGERS = (
    f"""CREATE TRIGGER outbox_ack_needs_receipt
    BEFORE UPDATE OF uploaded_at, receipt_id ON outbox
    WHEN NEW.uploaded_at IS NOT NULL AND NOT {_RECEIPT_COVERS}
    BEGIN SELECT {RECEIPT_MISSING}; END""",
    f"""CREATE TRIGGER outbox_insert_needs_receipt BEFORE INSERT ON outbox
    WHEN NEW.uploaded_at IS NOT NULL AND NOT {_RECEIPT_COVERS}
    BEGIN SELECT {RECEIPT_MISSING}; END""",
    """CREATE TRIGGER outbox_keep_unreceipted BEFORE DELETE ON outbox
    WHEN OLD.receipt_id IS NULL AND OLD.uploaded_at IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'outbox row not acknowledged by a platform receipt'); END""",
    """CREATE TRIGGER platform_receipt_append_only BEFORE UPDATE ON platform_receipt
    BEGIN SELECT RAISE(ABORT, 'platform receipts are kept as received'); END""",
    """CREATE TRIGGER platform_receipt_kept BEFORE DELETE ON platform_receipt
    BEGIN SELECT RAISE(ABORT, 'platform receipts are kept as received'); END""",
)
TRIGGER_NAMES = (
    "outbox_ack_needs_receipt",
    "outbox_insert_needs_receipt",
    "outbox_keep_unreceipted",
    "platform_receipt_append_only",
    "platform_receipt_kept",
)


def upgrade() -> None:
    op.create_table(
        "platform_receipt",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("server_time", sa.String(length=40), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("head_hash", sa.String(length=64), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("received_at", models.tables.AwareDateTime(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("platform_receipt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platform_receipt_seq"), ["seq"], unique=False)
    # A plain ADD COLUMN (not batch): rebuilding outbox would drop the 0001 triggers on it.
    op.execute("ALTER TABLE outbox ADD COLUMN receipt_id INTEGER REFERENCES platform_receipt(id)")

    conn = op.get_bind()
    acked = conn.execute(
        sa.text(
            "SELECT max(m.seq), max(m.device_id) FROM outbox o JOIN meal_record m "
            "ON m.record_id = o.record_id WHERE o.uploaded_at IS NOT NULL"
        )
    ).first()
    if acked is not None and acked[0] is not None:
        now = dt.datetime.now(dt.UTC).isoformat()
        conn.execute(
            sa.text(
                "INSERT INTO platform_receipt (kind, device_id, server_time, record_ids, seq, "
                "received_at) VALUES ('legacy', :dev, :now, '[]', :seq, :now)"
            ),
            {"dev": acked[1], "now": now, "seq": int(acked[0])},
        )
        conn.execute(
            sa.text(
                "UPDATE outbox SET receipt_id = (SELECT max(id) FROM platform_receipt) "
                "WHERE uploaded_at IS NOT NULL"
            )
        )
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("ALTER TABLE outbox DROP COLUMN receipt_id")
    with op.batch_alter_table("platform_receipt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_platform_receipt_seq"))
    op.drop_table("platform_receipt")
