"""face_template.detector: which face detector's box each template was encoded from

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:10:00

dlib's 5-point alignment from a YuNet box gives a different encoding than from a HOG box of the
same face (0.075 median apart, threshold 0.45), so templates and camera faces must come from
the same detector (`face.detector`). Every template stored before this revision was made by HOG.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: existing rows take the default, nothing is rebuilt.
    op.execute("ALTER TABLE face_template ADD COLUMN detector VARCHAR(8) NOT NULL DEFAULT 'hog'")


def downgrade() -> None:
    with op.batch_alter_table("face_template") as batch_op:
        batch_op.drop_column("detector")
