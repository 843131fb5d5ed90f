"""the store of each product and session, for the shares of a payment

Revision ID: 0007
Revises: 0006
Created: 2026-12-04 19:25:24.744414
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store_id", sa.String(), nullable=True))

    with op.batch_alter_table("sessions_on_sale", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions_on_sale", schema=None) as batch_op:
        batch_op.drop_column("store_id")

    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_column("store_id")
