"""scanners: the seller a scanner account works for, and when an account was deleted

Revision ID: 0003
Revises: 0002
Created: 2026-12-09 10:00:00
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
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("works_for", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("deleted_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key("fk_users_works_for_users", "users", ["works_for"], ["id"])
        batch_op.create_index(batch_op.f("ix_users_works_for"), ["works_for"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_works_for"))
        batch_op.drop_constraint("fk_users_works_for_users", type_="foreignkey")
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("works_for")
