"""book outbox guarded by platform receipts, like the meal outbox (0006)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:05:00

A book entry may be marked uploaded (and its outbox row, then the entry, deleted) only together
with a platform receipt of kind "books" that names it: marking it by hand in the sqlite3 shell
to hide it from the county is refused by the database.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COVERS = """EXISTS (SELECT 1 FROM platform_receipt r WHERE r.id = NEW.receipt_id
        AND r.kind = 'books' AND instr(r.record_ids, '"' || NEW.entry_id || '"') > 0)"""
MISSING = "RAISE(ABORT, 'a book entry is marked uploaded only with the platform receipt naming it')"
TRIGGERS = (
    f"""CREATE TRIGGER book_outbox_ack_needs_receipt
    BEFORE UPDATE OF uploaded_at, receipt_id ON book_outbox
    WHEN NEW.uploaded_at IS NOT NULL AND NOT {_COVERS}
    BEGIN SELECT {MISSING}; END""",
    f"""CREATE TRIGGER book_outbox_insert_needs_receipt BEFORE INSERT ON book_outbox
    WHEN NEW.uploaded_at IS NOT NULL AND NOT {_COVERS}
    BEGIN SELECT {MISSING}; END""",
)


def upgrade() -> None:
    # A plain ADD COLUMN (not batch): rebuilding book_outbox would drop its 0005 triggers.
    op.execute(
        "ALTER TABLE book_outbox ADD COLUMN receipt_id INTEGER REFERENCES platform_receipt(id)"
    )
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for name in ("book_outbox_insert_needs_receipt", "book_outbox_ack_needs_receipt"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("book_outbox") as batch_op:
        batch_op.drop_column("receipt_id")
