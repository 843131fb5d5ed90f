"""initial schema

Revision ID: 0001
Revises:
Created: 2026-11-22 00:43:34.671645
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer_group", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("received_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unpublished",
            ["id"],
            unique=False,
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "saga_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("correlation_id", sa.String(length=36), nullable=False),
        sa.Column("causation_id", sa.String(length=36), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("occurred_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("saga_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_saga_events_saga", ["correlation_id", "occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("saga_events", schema=None) as batch_op:
        batch_op.drop_index("ix_saga_events_saga")

    op.drop_table("saga_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished",
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
