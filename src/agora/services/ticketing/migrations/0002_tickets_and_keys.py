"""tickets, the keys that sign their codes, and the attendees' names

Revision ID: 0002
Revises: 0001
Created: 2026-12-02 01:53:43.386055
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
        "attendees",
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "ticket_keys",
        sa.Column("kid", sa.String(), nullable=False),
        sa.Column("private_pem", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("place_no", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("seat_id", sa.String(), nullable=True),
        sa.Column("area_id", sa.String(), nullable=True),
        sa.Column("price", agora.messaging.sql.DecimalText(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("attendee", sa.String(length=200), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("issued_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("checked_in_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("checked_in_gate", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "place_no", name="uq_tickets_place"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_customer", ["customer_id", "issued_at"], unique=False)
        batch_op.create_index("ix_tickets_session", ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_session")
        batch_op.drop_index("ix_tickets_customer")
    op.drop_table("tickets")
    op.drop_table("ticket_keys")
    op.drop_table("attendees")
