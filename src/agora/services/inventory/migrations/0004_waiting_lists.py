"""waiting lists of sold-out sessions, and each session's cap per order and offer time

Revision ID: 0004
Revises: 0003
Created: 2026-12-02 04:15:36.824493
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "waitlist",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("joined_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("offered_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "offer_expires_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("ended_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    with op.batch_alter_table("waitlist", schema=None) as batch_op:
        batch_op.create_index("ix_waitlist_customer", ["customer_id", "joined_at"], unique=False)
        batch_op.create_index(
            "ix_waitlist_offers_due",
            ["offer_expires_at"],
            unique=False,
            sqlite_where=sa.text("state = 'OFFERED'"),
            postgresql_where=sa.text("state = 'OFFERED'"),
        )
        batch_op.create_index(
            "ix_waitlist_queue", ["session_id", "state", "position"], unique=False
        )
        batch_op.create_index(
            "ux_waitlist_active",
            ["session_id", "customer_id"],
            unique=True,
            sqlite_where=sa.text("state IN ('WAITING', 'OFFERED')"),
            postgresql_where=sa.text("state IN ('WAITING', 'OFFERED')"),
        )

    with op.batch_alter_table("ticket_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_per_order", sa.Integer(), server_default="10", nullable=False)
        )
        batch_op.add_column(
            sa.Column("waitlist_offer_seconds", sa.Integer(), server_default="3600", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_sessions", schema=None) as batch_op:
        batch_op.drop_column("waitlist_offer_seconds")
        batch_op.drop_column("max_per_order")

    with op.batch_alter_table("waitlist", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_waitlist_active",
            sqlite_where=sa.text("state IN ('WAITING', 'OFFERED')"),
            postgresql_where=sa.text("state IN ('WAITING', 'OFFERED')"),
        )
        batch_op.drop_index("ix_waitlist_queue")
        batch_op.drop_index(
            "ix_waitlist_offers_due",
            sqlite_where=sa.text("state = 'OFFERED'"),
            postgresql_where=sa.text("state = 'OFFERED'"),
        )
        batch_op.drop_index("ix_waitlist_customer")

    op.drop_table("waitlist")
