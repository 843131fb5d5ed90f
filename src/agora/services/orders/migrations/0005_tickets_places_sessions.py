"""ticket lines, places held, sessions on sale

Revision ID: 0005
Revises: 0004
Created: 2026-12-02 01:34:24.167777
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_availability",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "category"),
    )
    op.create_table(
        "seat_categories",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("seat_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "seat_id"),
    )
    op.create_table(
        "sessions_on_sale",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("starts_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("opens_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closes_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("max_per_buyer", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "ticket_prices",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("price", agora.messaging.sql.DecimalText(), nullable=False),
        sa.Column("general_admission", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "category"),
    )
    op.create_table(
        "order_places",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("place_no", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("seat_id", sa.String(), nullable=True),
        sa.Column("area_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("order_id", "place_no"),
    )
    op.create_table(
        "order_tickets",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", agora.messaging.sql.DecimalText(), nullable=False),
        sa.Column("seat_ids", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no"),
    )
    with op.batch_alter_table("order_tickets", schema=None) as batch_op:
        batch_op.create_index("ix_order_tickets_buyer", ["customer_id", "session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_order_tickets_buyer")
    op.drop_table("order_tickets")
    op.drop_table("order_places")
    op.drop_table("ticket_prices")
    op.drop_table("sessions_on_sale")
    op.drop_table("seat_categories")
    op.drop_table("ticket_availability")
