"""the units stocked of each product, what its available, reserved and sold units add up to

Revision ID: 0006
Revises: 0005
Created: 2026-12-03 09:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stocked", sa.Integer(), server_default="0", nullable=False))
    # Stock was only ever added by listing, and kept conserved since.
    op.execute("UPDATE stock SET stocked = available + reserved + sold")


def downgrade() -> None:
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.drop_column("stocked")
