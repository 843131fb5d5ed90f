"""Analytics' tables: every event seen on any topic, by saga (correlation id)."""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, String, Table

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
