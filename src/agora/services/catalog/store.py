"""Catalog's tables: products, with availability as last announced by inventory."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from agora.messaging import DecimalText, UtcDateTime

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("price", DecimalText, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("available", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
)
