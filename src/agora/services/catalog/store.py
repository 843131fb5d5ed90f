"""Catalog's tables: sellers' stores, their products (with availability as last announced by
inventory and the average of their reviews), reviews, and who bought what (from orders' events).

Full-text search needs what a table declaration cannot say portably: an FTS5 table on SQLite, a
GIN expression index on PostgreSQL. The migrations create them; `metadata.info["unmanaged"]`
names them so schema comparisons leave them be.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from agora.messaging import DecimalText, UnitOfWork, UtcDateTime

metadata = MetaData(info={"unmanaged": ("products_fts", "ix_products_search")})

stores = Table(
    "stores",
    metadata,
    Column("id", String, primary_key=True),
    Column("seller_id", String, nullable=True, index=True),
    Column("name", String, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", String, primary_key=True),
    Column("store_id", String, nullable=True, index=True),
    Column("seller_id", String, nullable=True),
    Column("name", String, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("price", DecimalText, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("available", Integer, nullable=False, default=0),
    Column("listed", Boolean, nullable=False, default=True),
    Column("rating_sum", Integer, nullable=False, default=0),
    Column("rating_count", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("product_id", String, nullable=False),
    Column("buyer_id", String, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("product_id", "buyer_id", name="uq_reviews_product_buyer"),
    Index("ix_reviews_product_created", "product_id", "created_at"),
)

purchases = Table(
    "purchases",
    metadata,
    Column("buyer_id", String, primary_key=True),
    Column("product_id", String, primary_key=True),
    Column("order_id", String(36), nullable=False),
)


class CatalogUnitOfWork(UnitOfWork):
    """Names the products whose cached views it changes; the service drops them on commit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.changed_products: set[str] = set()
