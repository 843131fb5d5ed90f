"""every change of a session's places, in version order, for its seat map's streams

Revision ID: 0005
Revises: 0004
Created: 2026-12-02 05:20:06.454277
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
        "place_changes",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=True),
        sa.Column("available", sa.Integer(), nullable=True),
        sa.Column("committed_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("place_changes")
