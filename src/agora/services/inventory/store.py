"""Inventory's tables: stock levels per product, and holds of stock for orders."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UtcDateTime
from agora.services.inventory.domain import StockLevel

metadata = MetaData()

stock = Table(
    "stock",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, default=0),
    Column("sold", Integer, nullable=False, default=0),
    Column("seller_id", String, nullable=True),
    CheckConstraint("available >= 0", name="available_not_negative"),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
)

HELD, SOLD, RELEASED = "HELD", "SOLD", "RELEASED"

holds = Table(
    "holds",
    metadata,
    Column("order_id", String(36), nullable=False),
    Column("product_id", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", String(8), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("expiry_announced", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("order_id", "product_id"),
)

# The sweeper's query: held, not yet announced, by expiry.
Index(
    "ix_holds_due",
    holds.c.expires_at,
    sqlite_where=(holds.c.state == HELD) & ~holds.c.expiry_announced,
    postgresql_where=(holds.c.state == HELD) & ~holds.c.expiry_announced,
)


async def stock_level(conn: AsyncConnection, product_id: str) -> StockLevel | None:
    row = (await conn.execute(STOCK_OF, {"product": product_id})).first()
    if row is None:
        return None
    return StockLevel(
        product_id=row.product_id,
        seller_id=row.seller_id,
        available=row.available,
        reserved=row.reserved,
        sold=row.sold,
    )


STOCK_OF = select(stock).where(stock.c.product_id == bindparam("product"))


async def next_expiry(conn: AsyncConnection) -> dt.datetime | None:
    """When the first hold not yet announced runs out."""
    value: dt.datetime | None = await conn.scalar(
        select(holds.c.expires_at)
        .where(holds.c.state == HELD, ~holds.c.expiry_announced)
        .order_by(holds.c.expires_at)
        .limit(1)
    )
    return value
