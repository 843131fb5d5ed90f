"""Inventory's tables: stock levels per product, and holds of stock for orders."""

from __future__ import annotations

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
)

from agora.messaging import UtcDateTime

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
