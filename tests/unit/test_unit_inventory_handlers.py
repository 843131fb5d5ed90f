"""Inventory's handlers against an in-memory twin of their repository, and against the real one
on SQLite (so that the twin cannot drift from what the handlers get in production)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from agora.contracts import catalog, orders
from agora.contracts.inventory import (
    AvailabilityChanged,
    StockRejected,
    StockReleased,
    StockReserved,
)
from agora.messaging import Event
from agora.messaging.sql import Database, sqlite_url
from agora.services.inventory import store
from agora.services.inventory.handlers import InventoryHandlers
from agora.services.inventory.locking import Shortage
from agora.services.inventory.places import PlaceRepository
from agora.services.inventory.repository import StockRepository

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
HOLD = dt.timedelta(minutes=10)


class InMemoryStock:
    """`StockRepository`'s twin: the same answers, kept in dicts."""

    def __init__(self) -> None:
        self.levels: dict[str, dict[str, int]] = {}
        self.holds: dict[tuple[str, str], tuple[int, str, dt.datetime]] = {}
        self.locked: list[list[str]] = []

    async def lock(
        self, product_ids: Iterable[str], ending_orders: Sequence[str], *, timeout: float
    ) -> None:
        products = set(product_ids)
        products.update(p for (order, p) in self.holds if order in ending_orders)
        self.locked.append(sorted(products))

    async def add(self, product_id: str, seller_id: str | None, units: int) -> bool:
        if product_id in self.levels:
            return False
        self.levels[product_id] = {"available": units, "reserved": 0, "sold": 0}
        return True

    async def reserve(self, lines: Sequence[tuple[str, int]]) -> dict[str, int]:
        for product_id, quantity in sorted(lines):
            level = self.levels.get(product_id)
            if level is None or level["available"] < quantity:
                raise Shortage(product_id, quantity)
        for product_id, quantity in lines:
            self.levels[product_id]["available"] -= quantity
            self.levels[product_id]["reserved"] += quantity
        return {product_id: self.levels[product_id]["available"] for product_id, _ in lines}

    async def hold(
        self, order_id: str, lines: Sequence[tuple[str, int]], expires_at: dt.datetime
    ) -> None:
        for product_id, quantity in lines:
            self.holds[(order_id, product_id)] = (quantity, store.HELD, expires_at)

    async def end_holds(self, order_id: str, state: str) -> list[tuple[str, int]]:
        ended = []
        for (order, product_id), (quantity, held, expires_at) in list(self.holds.items()):
            if order == order_id and held == store.HELD:
                self.holds[(order, product_id)] = (quantity, state, expires_at)
                ended.append((product_id, quantity))
        return ended

    async def sell(self, product_id: str, quantity: int) -> None:
        self.levels[product_id]["reserved"] -= quantity
        self.levels[product_id]["sold"] += quantity

    async def put_back(self, product_id: str, quantity: int) -> int:
        self.levels[product_id]["reserved"] -= quantity
        self.levels[product_id]["available"] += quantity
        return self.levels[product_id]["available"]


class Work(Protocol):
    """What a test does with either adapter: apply an event in a unit of work, read levels."""

    emitted: list[Event]

    async def apply(self, handle: Any, event: Event) -> None: ...

    async def level(self, product_id: str) -> tuple[int, int, int]: ...


class NoPlaces:
    """`PlaceRepository`'s twin for orders of products alone: no session, no place held (the
    places' rules are tested on real databases in tests/integration/test_seat_holds.py)."""

    async def lock(
        self, session_ids: Iterable[str], ending: Sequence[str], *, timeout: float
    ) -> None:
        assert not list(session_ids)

    async def end(self, order_id: str, state: str) -> list[str]:
        return []


class _Unit:
    def __init__(self, stock: Any, emitted: list[Event], places: Any = None) -> None:
        self.stock = stock
        self.places = places or NoPlaces()
        self._emitted = emitted

    def emit(self, event: Event) -> None:
        self._emitted.append(event)


class MemoryWork:
    def __init__(self) -> None:
        self.stock = InMemoryStock()
        self.emitted: list[Event] = []

    async def apply(self, handle: Any, event: Event) -> None:
        await handle(event, _Unit(self.stock, self.emitted))

    async def level(self, product_id: str) -> tuple[int, int, int]:
        level = self.stock.levels[product_id]
        return level["available"], level["reserved"], level["sold"]


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []

    async def apply(self, handle: Any, event: Event) -> None:
        async with self.db.write() as conn:
            await handle(event, _Unit(StockRepository(conn), self.emitted, PlaceRepository(conn)))

    async def level(self, product_id: str) -> tuple[int, int, int]:
        async with self.db.read() as conn:
            level = await store.stock_level(conn, product_id)
        assert level is not None
        return level.available, level.reserved, level.sold


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "inventory.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


@pytest.fixture
def handlers() -> InventoryHandlers:
    return InventoryHandlers(HOLD, clock=lambda: NOW)


def listed(product_id: str, units: int) -> catalog.ProductListed:
    return catalog.ProductListed(
        product_id=product_id,
        name=product_id,
        price=Decimal("1.00"),
        currency="EUR",
        initial_stock=units,
        seller_id="seller-1",
    )


def placed(order_id: str, *lines: tuple[str, int]) -> orders.OrderPlaced:
    return orders.OrderPlaced(
        order_id=order_id,
        customer_id="buyer-1",
        lines=tuple(
            orders.OrderLine(product_id=p, quantity=q, unit_price=Decimal("1.00")) for p, q in lines
        ),
        total=Decimal(sum(q for _, q in lines)),
        currency="EUR",
    )


async def stocked(work: Work, handlers: InventoryHandlers, **units: int) -> None:
    for product_id, count in units.items():
        await work.apply(handlers.on_product_listed, listed(product_id, count))
    work.emitted.clear()


async def test_a_product_listed_twice_is_stocked_once(
    work: Work, handlers: InventoryHandlers
) -> None:
    await work.apply(handlers.on_product_listed, listed("tea", 5))
    await work.apply(handlers.on_product_listed, listed("tea", 99))

    assert await work.level("tea") == (5, 0, 0)
    assert work.emitted == [AvailabilityChanged(product_id="tea", available=5)]


async def test_an_order_is_held_whole_until_the_hold_time_has_passed(
    work: Work, handlers: InventoryHandlers
) -> None:
    await stocked(work, handlers, tea=5, cups=2)

    await work.apply(handlers.on_order_placed, placed("o1", ("tea", 3), ("cups", 2)))

    assert (await work.level("tea"), await work.level("cups")) == ((2, 3, 0), (0, 2, 0))
    reserved = [e for e in work.emitted if isinstance(e, StockReserved)]
    assert len(reserved) == 1
    assert reserved[0].expires_at == NOW + HOLD
    assert {(line.product_id, line.quantity) for line in reserved[0].lines} == {
        ("tea", 3),
        ("cups", 2),
    }
    assert {e for e in work.emitted if isinstance(e, AvailabilityChanged)} == {
        AvailabilityChanged(product_id="tea", available=2),
        AvailabilityChanged(product_id="cups", available=0),
    }


async def test_an_order_that_cannot_be_had_whole_takes_nothing(
    work: Work, handlers: InventoryHandlers
) -> None:
    await stocked(work, handlers, tea=5, cups=1)

    await work.apply(handlers.on_order_placed, placed("o1", ("tea", 3), ("cups", 2)))

    assert (await work.level("tea"), await work.level("cups")) == ((5, 0, 0), (1, 0, 0))
    assert len(work.emitted) == 1
    rejected = work.emitted[0]
    assert isinstance(rejected, StockRejected)
    assert rejected.order_id == "o1"
    assert rejected.product_id == "cups"


async def test_a_confirmed_order_sells_its_hold_and_a_later_cancel_releases_nothing(
    work: Work, handlers: InventoryHandlers
) -> None:
    await stocked(work, handlers, tea=5)
    await work.apply(handlers.on_order_placed, placed("o1", ("tea", 2)))
    work.emitted.clear()

    await work.apply(
        handlers.on_order_confirmed,
        orders.OrderConfirmed(
            order_id="o1", customer_id="buyer-1", total=Decimal("2.00"), currency="EUR"
        ),
    )
    await work.apply(
        handlers.on_order_ended,
        orders.OrderCancelled(order_id="o1", customer_id="buyer-1", reason="late"),
    )

    assert await work.level("tea") == (3, 0, 2)
    assert work.emitted == []


async def test_an_ended_order_puts_its_hold_back_once(
    work: Work, handlers: InventoryHandlers
) -> None:
    await stocked(work, handlers, tea=5)
    await work.apply(handlers.on_order_placed, placed("o1", ("tea", 2)))
    await work.apply(handlers.on_order_placed, placed("o2", ("tea", 1)))
    work.emitted.clear()

    cancelled = orders.OrderCancelled(order_id="o1", customer_id="buyer-1", reason="declined")
    await work.apply(handlers.on_order_ended, cancelled)
    await work.apply(handlers.on_order_ended, cancelled)
    await work.apply(
        handlers.on_order_ended, orders.OrderExpired(order_id="o2", customer_id="buyer-1")
    )

    assert await work.level("tea") == (5, 0, 0)
    assert work.emitted == [
        AvailabilityChanged(product_id="tea", available=4),
        StockReleased(order_id="o1", reason="declined"),
        AvailabilityChanged(product_id="tea", available=5),
        StockReleased(order_id="o2", reason="order expired"),
    ]


async def test_a_batch_locks_the_products_of_its_orders_and_of_the_holds_it_ends(
    handlers: InventoryHandlers,
) -> None:
    work = MemoryWork()
    await stocked(work, handlers, tea=5, cups=5, jam=5)
    await work.apply(handlers.on_order_placed, placed("o1", ("jam", 1)))

    batch: list[Event] = [
        placed("o2", ("tea", 1), ("cups", 1)),
        orders.OrderCancelled(order_id="o1", customer_id="buyer-1", reason="r"),
    ]
    await handlers.lock_batch(batch, _Unit(work.stock, work.emitted))  # type: ignore[arg-type]

    assert work.stock.locked == [["cups", "jam", "tea"]]
