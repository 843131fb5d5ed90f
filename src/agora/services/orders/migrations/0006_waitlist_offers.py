"""waiting-list offers open to their buyers, and the offer an order's tickets take

Revision ID: 0006
Revises: 0005
Created: 2026-12-02 04:16:37.693340
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "waitlist_offers",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("expires_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    with op.batch_alter_table("order_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waitlist_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_tickets", schema=None) as batch_op:
        batch_op.drop_column("waitlist_id")

    op.drop_table("waitlist_offers")
