"""initial schema

Revision ID: 0001
Revises:
Created: 2026-11-22 00:43:34.671645

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
