"""Analytics' handler against an in-memory twin of its repository, and against the real one on
SQLite (so that the twin cannot drift from what the handler gets in production)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from agora.contracts import orders
from agora.contracts.inventory import AvailabilityChanged, StockReserved
from agora.contracts.orders import OrderLine, OrderPlaced
from agora.messaging import Envelope, Event
from agora.messaging.sql import Database, sqlite_url
from agora.services.analytics import store
from agora.services.analytics.handlers import handlers_for, record_event
from agora.services.analytics.repository import SagaEventsRepository

TIMELINE = ("event_id", "correlation_id", "causation_id", "type", "source", "key", "customer_id")


class InMemorySagaEvents:
    """`SagaEventsRepository`'s twin: the same rows, kept in a list."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def record(self, envelope: Envelope) -> None:
        self.rows.append(
            {
                "event_id": envelope.id,
                "correlation_id": envelope.correlation_id,
                "causation_id": envelope.causation_id,
                "type": envelope.type,
                "source": envelope.source,
                "key": envelope.key,
                "occurred_at": envelope.occurred_at,
                "customer_id": envelope.payload.get("customer_id"),
            }
        )


class _Unit:
    def __init__(self, saga_events: Any, cause: Envelope) -> None:
        self.saga_events = saga_events
        self.cause = cause


class Work(Protocol):
    async def apply(self, envelope: Envelope, event: Event) -> None: ...

    async def timeline(self, correlation_id: str) -> list[tuple[Any, ...]]: ...


class MemoryWork:
    def __init__(self) -> None:
        self.saga_events = InMemorySagaEvents()

    async def apply(self, envelope: Envelope, event: Event) -> None:
        await record_event(event, _Unit(self.saga_events, envelope))  # type: ignore[arg-type]

    async def timeline(self, correlation_id: str) -> list[tuple[Any, ...]]:
        rows = [r for r in self.saga_events.rows if r["correlation_id"] == correlation_id]
        rows.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
        return [tuple(r[c] for c in TIMELINE) for r in rows]


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, envelope: Envelope, event: Event) -> None:
        async with self.db.write() as conn:
            unit = _Unit(SagaEventsRepository(conn), envelope)
            await record_event(event, unit)  # type: ignore[arg-type]

    async def timeline(self, correlation_id: str) -> list[tuple[Any, ...]]:
        async with self.db.read() as conn:
            rows = await store.saga_timeline(conn, correlation_id)
        return [tuple(getattr(row, c) for c in TIMELINE) for row in rows]


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "analytics.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


def placed(order_id: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="buyer-1",
        lines=(OrderLine(product_id="tea", quantity=1, unit_price=Decimal("2.00")),),
        total=Decimal("2.00"),
        currency="EUR",
    )


def test_every_event_type_is_recorded_by_the_one_handler() -> None:
    table = handlers_for([OrderPlaced, AvailabilityChanged])

    assert table == {OrderPlaced: record_event, AvailabilityChanged: record_event}


async def test_a_saga_is_recorded_event_by_event_with_its_causes_and_customer(
    work: Work,
) -> None:
    event = placed("o1")
    first = Envelope.wrap(event, source="orders")
    reserved = StockReserved(order_id="o1", lines=(), expires_at=first.occurred_at)
    second = Envelope.wrap(reserved, source="inventory", cause=first)
    other = Envelope.wrap(placed("o2"), source="orders")

    await work.apply(first, event)
    await work.apply(second, reserved)
    await work.apply(other, placed("o2"))

    assert await work.timeline("o1") == [
        (first.id, "o1", None, "OrderPlaced", "orders", "o1", "buyer-1"),
        (second.id, "o1", first.id, "StockReserved", "inventory", "o1", None),
    ]


async def test_an_event_that_names_no_customer_is_recorded_without_one(work: Work) -> None:
    event = AvailabilityChanged(product_id="tea", available=3)
    envelope = Envelope.wrap(event, source="inventory", correlation_id="saga-1")

    await work.apply(envelope, event)

    assert await work.timeline("saga-1") == [
        (envelope.id, "saga-1", None, "AvailabilityChanged", "inventory", "tea", None)
    ]


async def test_an_order_cancelled_carries_its_customer_into_the_timeline(work: Work) -> None:
    event = orders.OrderCancelled(order_id="o3", customer_id="buyer-9", reason="declined")
    envelope = Envelope.wrap(event, source="orders")

    await work.apply(envelope, event)

    ((*_, customer),) = await work.timeline("o3")
    assert customer == "buyer-9"
