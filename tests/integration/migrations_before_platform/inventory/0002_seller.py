"""the seller of each stocked product, for who may read its stock

Revision ID: 0002
Revises: 0001
Created: 2026-11-22 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seller_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.drop_column("seller_id")
