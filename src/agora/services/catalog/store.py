"""Catalog's tables: sellers' stores, their products (with availability as last announced by
inventory and the average of their reviews), reviews, and who bought what (from orders' events).

Full-text search needs what a table declaration cannot say portably: an FTS5 table on SQLite, a
GIN expression index on PostgreSQL. The migrations create them; `metadata.info["unmanaged"]`
names them so schema comparisons leave them be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    false,
    func,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from agora.messaging import DecimalText, UtcDateTime

metadata = MetaData(info={"unmanaged": ("products_fts", "ix_products_search")})

stores = Table(
    "stores",
    metadata,
    Column("id", String, primary_key=True),
    Column("seller_id", String, nullable=True, index=True),
    Column("name", String, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    # Whether `StoreOpened` was sent: stores opened before the event existed were not, and are
    # announced when the service starts (`handlers.announce_stores`).
    Column("announced", Boolean, nullable=False, server_default=false()),
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


# -- read queries ----------------------------------------------------------------------------

Page = tuple[list[Row[Any]], int]
"""One page of rows, and how many rows the whole query has."""


async def page_of(
    conn: AsyncConnection, query: Select[Any], order: Sequence[Any], page: int, page_size: int
) -> Page:
    total = await conn.scalar(select(func.count()).select_from(query.subquery()))
    rows = await conn.execute(
        query.order_by(*order).limit(page_size).offset((page - 1) * page_size)
    )
    return list(rows.all()), int(total or 0)


async def stores_page(
    conn: AsyncConnection, seller_id: str | None, page: int, page_size: int
) -> Page:
    """Stores, newest first; only `seller_id`'s if given."""
    query = select(stores)
    if seller_id is not None:
        query = query.where(stores.c.seller_id == seller_id)
    return await page_of(conn, query, [stores.c.created_at.desc(), stores.c.id], page, page_size)


async def store_products_page(
    conn: AsyncConnection, store_id: str, *, listed_only: bool, page: int, page_size: int
) -> Page:
    """A store's products, newest first."""
    query = select(products).where(products.c.store_id == store_id)
    if listed_only:
        query = query.where(products.c.listed.is_(True))
    return await page_of(
        conn, query, [products.c.created_at.desc(), products.c.id], page, page_size
    )


async def reviews_page(conn: AsyncConnection, product_id: str, page: int, page_size: int) -> Page:
    """A product's reviews, newest first."""
    query = select(reviews).where(reviews.c.product_id == product_id)
    return await page_of(conn, query, [reviews.c.created_at.desc(), reviews.c.id], page, page_size)


async def store_by_id(conn: AsyncConnection, store_id: str) -> Row[Any] | None:
    return (await conn.execute(select(stores).where(stores.c.id == store_id))).first()


async def product_by_id(conn: AsyncConnection, product_id: str) -> Row[Any] | None:
    return (await conn.execute(select(products).where(products.c.id == product_id))).first()


async def review_by_id(conn: AsyncConnection, review_id: str) -> Row[Any]:
    return (await conn.execute(select(reviews).where(reviews.c.id == review_id))).one()
