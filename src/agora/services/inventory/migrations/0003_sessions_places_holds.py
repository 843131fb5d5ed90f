"""sessions of events: seats, general-admission areas, and holds of places

Revision ID: 0003
Revises: 0002
Created: 2026-12-02 01:04:26.283327
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("area_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.CheckConstraint("available >= 0", name="area_available_not_negative"),
        sa.PrimaryKeyConstraint("session_id", "area_id"),
    )
    op.create_table(
        "place_holds",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("place_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("expires_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expiry_announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "session_id", "place_id"),
    )
    with op.batch_alter_table("place_holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_place_holds_due",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("state = 'HELD' AND expiry_announced = 0"),
            postgresql_where=sa.text("state = 'HELD' AND NOT expiry_announced"),
        )

    op.create_table(
        "seat_rows",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("row_key", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("free", sa.Integer(), nullable=False),
        sa.CheckConstraint("free >= 0", name="free_not_negative"),
        sa.PrimaryKeyConstraint("session_id", "row_key", "category"),
    )
    with op.batch_alter_table("seat_rows", schema=None) as batch_op:
        batch_op.create_index("ix_seat_rows_rank", ["session_id", "category", "rank"], unique=False)

    op.create_table(
        "seats",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("seat_id", sa.String(), nullable=False),
        sa.Column("row_key", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "seat_id"),
    )
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.create_index("ix_seats_row", ["session_id", "row_key", "position"], unique=False)

    op.create_table(
        "ticket_plans",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "ticket_sessions",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("starts_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("hold_seconds", sa.Integer(), nullable=False),
        sa.Column("opens_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closes_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )


def downgrade() -> None:
    op.drop_table("ticket_sessions")
    op.drop_table("ticket_plans")
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_index("ix_seats_row")

    op.drop_table("seats")
    with op.batch_alter_table("seat_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_seat_rows_rank")

    op.drop_table("seat_rows")
    with op.batch_alter_table("place_holds", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_place_holds_due",
            sqlite_where=sa.text("state = 'HELD' AND expiry_announced = 0"),
            postgresql_where=sa.text("state = 'HELD' AND NOT expiry_announced"),
        )

    op.drop_table("place_holds")
    op.drop_table("areas")
