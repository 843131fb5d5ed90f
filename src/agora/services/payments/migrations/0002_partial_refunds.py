"""partial refunds

Revision ID: 0002
Revises: 0001
Created: 2026-12-02 02:03:18.877588
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partial_refunds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("amount", agora.messaging.sql.DecimalText(), nullable=False),
        sa.Column("requested_by", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("refund_id", sa.String(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("partial_refunds", schema=None) as batch_op:
        batch_op.create_index("ix_partial_refunds_due", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("partial_refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_partial_refunds_due")
    op.drop_table("partial_refunds")
