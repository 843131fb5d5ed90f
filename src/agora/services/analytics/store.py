"""Analytics' tables: every event seen on any topic, by saga (correlation id)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, MetaData, String, Table, bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UtcDateTime

metadata = MetaData()

saga_events = Table(
    "saga_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("correlation_id", String(36), nullable=False),
    Column("causation_id", String(36), nullable=True),
    Column("type", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("key", String, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("customer_id", String, nullable=True),
)
Index("ix_saga_events_saga", saga_events.c.correlation_id, saga_events.c.occurred_at)

SAGA_OF = (
    select(saga_events)
    .where(saga_events.c.correlation_id == bindparam("saga"))
    .order_by(saga_events.c.occurred_at, saga_events.c.event_id)
)


async def saga_timeline(conn: AsyncConnection, correlation_id: str) -> list[Row[Any]]:
    """Every event seen of one saga, in the order they occurred."""
    return list((await conn.execute(SAGA_OF, {"saga": correlation_id})).all())
