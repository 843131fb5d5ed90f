"""initial schema: stores sold in, venues, events with price categories and sessions

Revision ID: 0001
Revises:
Created: 2026-12-02 01:30:00

The outbox and inbox are the platform branch's (`platform_0001`, which this depends on).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "stores",
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_table(
        "venues",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("venue_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("hold_seconds", sa.Integer(), nullable=False),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("max_per_buyer", sa.Integer(), nullable=False),
        sa.Column("cancel_until_hours", sa.Integer(), nullable=False),
        sa.Column("first_start", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_start", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_last_start", ["last_start"], unique=False)
    op.create_table(
        "price_categories",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("price", agora.messaging.sql.DecimalText(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"]),
        sa.PrimaryKeyConstraint("event_id", "name"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("starts_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("opens_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closes_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_event", ["event_id", "starts_at"], unique=False)


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("price_categories")
    op.drop_table("events")
    op.drop_table("venues")
    op.drop_table("stores")
