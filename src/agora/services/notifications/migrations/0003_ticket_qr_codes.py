"""ticket QR codes

Revision ID: 0003
Revises: 0002
Created: 2026-11-23 10:12:41.518204

A ticket's email keeps the ticket and its code, from which its QR image is drawn when the
message is sent. Messages written before have neither: they are sent as they were, text only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("ticket_code", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("ticket_code")
        batch_op.drop_column("ticket_id")
