"""the seller and listing of each product, orders' lines by product

Revision ID: 0002
Revises: 0001
Created: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seller_id", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("listed", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.create_index("ix_prices_seller_id", ["seller_id"])
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.alter_column("listed", server_default=None)
    op.create_index("ix_order_lines_product_id", "order_lines", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_order_lines_product_id", table_name="order_lines")
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_index("ix_prices_seller_id")
        batch_op.drop_column("listed")
        batch_op.drop_column("seller_id")
