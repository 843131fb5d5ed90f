"""idempotency keys are each customer's own: the key table's primary key is (customer_id, key)

Revision ID: 0004
Revises: 0003
Created: 2026-11-29 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keys(*primary_key: str) -> sa.Table:
    """The table as it stands, for SQLite's batch copy: reflected, its primary key would be
    unnamed there, and one cannot drop an unnamed constraint (PostgreSQL alters in place)."""
    return sa.Table(
        "idempotency_keys",
        sa.MetaData(),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint(*primary_key, name="idempotency_keys_pkey"),
    )


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("customer_id", sa.String(), nullable=True))
    op.execute(
        "UPDATE idempotency_keys SET customer_id = "
        "(SELECT orders.customer_id FROM orders WHERE orders.id = idempotency_keys.order_id)"
    )
    # A claim with no order yet names no customer: its request failed or is in flight, and a
    # retry claims the key again.
    op.execute("DELETE FROM idempotency_keys WHERE customer_id IS NULL")
    with op.batch_alter_table("idempotency_keys", copy_from=_keys("key")) as batch_op:
        batch_op.alter_column("customer_id", existing_type=sa.String(), nullable=False)
        batch_op.drop_constraint("idempotency_keys_pkey", type_="primary")
        batch_op.create_primary_key("idempotency_keys_pkey", ["customer_id", "key"])


def downgrade() -> None:
    # One row per key again: a key that two customers used is dropped for both.
    op.execute(
        "DELETE FROM idempotency_keys WHERE key IN "
        "(SELECT key FROM idempotency_keys GROUP BY key HAVING COUNT(*) > 1)"
    )
    with op.batch_alter_table(
        "idempotency_keys", copy_from=_keys("customer_id", "key")
    ) as batch_op:
        batch_op.drop_constraint("idempotency_keys_pkey", type_="primary")
        batch_op.create_primary_key("idempotency_keys_pkey", ["key"])
        batch_op.drop_column("customer_id")
