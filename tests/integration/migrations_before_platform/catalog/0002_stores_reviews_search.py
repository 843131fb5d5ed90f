"""stores, product ownership and listing, reviews, purchases, full-text search

Revision ID: 0002
Revises: 0001
Created: 2026-11-22 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agora.messaging.sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One text per product, searched with stemming: FTS5's porter tokenizer on SQLite, the english
# configuration on PostgreSQL (an expression index; queries repeat the same expression).
SEARCH_DOCUMENT = "to_tsvector('english', name || ' ' || description)"


def upgrade() -> None:
    op.create_table(
        "stores",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("seller_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stores_seller_id", "stores", ["seller_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("buyer_id", sa.String(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", agora.messaging.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product_id", "buyer_id", name="uq_reviews_product_buyer"),
    )
    op.create_index("ix_reviews_product_created", "reviews", ["product_id", "created_at"])
    op.create_table(
        "purchases",
        sa.Column("buyer_id", sa.String(), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id", "product_id"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("seller_id", sa.String(), nullable=True))
        batch_op.add_column(
            sa.Column("listed", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("rating_sum", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_products_store_id", ["store_id"])
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column("listed", server_default=None)
        batch_op.alter_column("rating_sum", server_default=None)
        batch_op.alter_column("rating_count", server_default=None)

    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE products_fts USING fts5("
            "product_id UNINDEXED, name, description, tokenize = 'porter unicode61')"
        )
        op.execute(
            "INSERT INTO products_fts (product_id, name, description) "
            "SELECT id, name, description FROM products"
        )
    else:
        op.execute(f"CREATE INDEX ix_products_search ON products USING gin ({SEARCH_DOCUMENT})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE products_fts")
    else:
        op.execute("DROP INDEX ix_products_search")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_store_id")
        batch_op.drop_column("rating_count")
        batch_op.drop_column("rating_sum")
        batch_op.drop_column("listed")
        batch_op.drop_column("seller_id")
        batch_op.drop_column("store_id")
    op.drop_table("purchases")
    op.drop_index("ix_reviews_product_created", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_stores_seller_id", table_name="stores")
    op.drop_table("stores")
