"""roster hygiene: card numbers stored in one form, elder and card fields bounded

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:50:00

Signed rosters used to store a card number as sent ("04a23b1c", " 04A2 3B1C"), which never
matched the upper-case form a reader delivers; those rows are brought to that form (rows whose
normalised number is already taken keep their old, unmatched value: the next roster decides).
SQLite does not enforce VARCHAR lengths, so triggers now refuse what the columns cannot hold:
a 1,000,000-character name no longer reaches the table from any source.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ELDER_BOUNDED = """
    length(NEW.elder_id) > 64 OR length(NEW.name) > 64 OR length(NEW.id_number_masked) > 32
    OR length(NEW.group_name) > 64 OR length(NEW.contact_phone) > 32
    OR length(NEW.status) > 16"""
TRIGGERS = (
    f"""CREATE TRIGGER elder_bounded_insert BEFORE INSERT ON elder WHEN {ELDER_BOUNDED}
    BEGIN SELECT RAISE(ABORT, 'elder field longer than its column'); END""",
    f"""CREATE TRIGGER elder_bounded_update BEFORE UPDATE ON elder WHEN {ELDER_BOUNDED}
    BEGIN SELECT RAISE(ABORT, 'elder field longer than its column'); END""",
    """CREATE TRIGGER card_bounded_insert BEFORE INSERT ON card
    WHEN length(NEW.uid) > 32 OR NEW.uid <> upper(NEW.uid) OR instr(NEW.uid, ' ') > 0
    BEGIN SELECT RAISE(ABORT, 'card number not in the roster form'); END""",
)
TRIGGER_NAMES = ("elder_bounded_insert", "elder_bounded_update", "card_bounded_insert")


def upgrade() -> None:
    op.execute("UPDATE OR IGNORE card SET uid = upper(replace(trim(uid), ' ', ''))")
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
