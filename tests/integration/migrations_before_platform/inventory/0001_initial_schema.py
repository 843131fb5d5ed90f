"""initial schema

Revision ID: 0001
Revises:
Created: 2026-11-22 00:43:34.247547
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
        "holds",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("expires_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expiry_announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "product_id"),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_holds_due",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("state = 'HELD' AND expiry_announced = 0"),
            postgresql_where=sa.text("state = 'HELD' AND NOT expiry_announced"),
        )

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
        "stock",
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.CheckConstraint("available >= 0", name="available_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        sa.PrimaryKeyConstraint("product_id"),
    )


def downgrade() -> None:
    op.drop_table("stock")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished",
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    op.drop_table("inbox")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_holds_due",
            sqlite_where=sa.text("state = 'HELD' AND expiry_announced = 0"),
            postgresql_where=sa.text("state = 'HELD' AND NOT expiry_announced"),
        )

    op.drop_table("holds")
