"""what inventory last said each product has available (the door's sold-out check)

Revision ID: 0003
Revises: 0002
Created: 2026-11-22 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("available", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_column("available")
