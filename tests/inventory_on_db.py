"""Inventory on a real database (SQLite or PostgreSQL), driven by events through its handlers
in real transactions, with a clock the test moves: shared by the tests of places and of waiting
lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts import orders, ticketing
from agora.contracts.seating import SeatingPlan, rows_plan
from agora.infra import InfraSettings
from agora.messaging import Database, Event, sqlite_url
from agora.runtime.supervisor import ensure_database
from agora.services.inventory import store
from agora.services.inventory.handlers import InventoryHandlers
from agora.services.inventory.places import PlaceRepository
from agora.services.inventory.repository import StockRepository
from agora.services.inventory.waitlist import WaitlistRepository

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters of a `db` fixture that calls `inventory_database`."""


async def inventory_database(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> AsyncIterator[Database]:
    """A fresh inventory database of the kind `request.param` names."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "inventory.db")
    else:
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env(name)["AGORA_DATABASE_URL_TEMPLATE"]
        url = template.replace("{service}", "inventory")
        await ensure_database(url)
    database = Database(url, store.metadata)
    await database.create_tables()
    yield database
    await database.dispose()


T = TypeVar("T")

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SHOW = NOW + dt.timedelta(days=7)
HOLD = dt.timedelta(minutes=15)


class Unit:
    """What inventory's handlers use of a unit of work, over one real transaction."""

    def __init__(self, conn: AsyncConnection, emitted: list[Event]) -> None:
        self.conn = conn
        self.emitted = emitted

    @property
    def stock(self) -> StockRepository:
        return StockRepository(self.conn)

    @property
    def places(self) -> PlaceRepository:
        return PlaceRepository(self.conn)

    @property
    def waitlist(self) -> WaitlistRepository:
        return WaitlistRepository(self.conn)

    def all_or_nothing(self) -> Any:
        return self.conn.begin_nested()

    def emit(self, event: Event) -> None:
        self.emitted.append(event)


class Inventory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []
        self.now = NOW
        self.handlers = InventoryHandlers(HOLD, clock=lambda: self.now)

    async def apply(self, event: Event) -> list[Event]:
        before = len(self.emitted)
        handle = self.handlers.table[type(event)]
        async with self.db.write() as conn:
            unit = Unit(conn, self.emitted)
            await self.handlers.lock_batch([event], unit)  # type: ignore[arg-type]
            await handle(event, unit)  # type: ignore[arg-type]
        return self.emitted[before:]

    async def within(self, step: Callable[[Any], Awaitable[T]]) -> tuple[T, list[Event]]:
        """Run `step` (given the unit of work) in a transaction of its own, as a route or the
        sweeper does; returns what it returned and what it emitted (if it raises, nothing of it
        is kept)."""
        before = len(self.emitted)
        try:
            async with self.db.write() as conn:
                result = await step(Unit(conn, self.emitted))
        except BaseException:
            del self.emitted[before:]
            raise
        return result, self.emitted[before:]

    async def seat_states(self, session_id: str) -> dict[str, str]:
        async with self.db.read() as conn:
            found = await store.seat_map(conn, session_id)
        assert found is not None
        return found.seats

    async def version(self, session_id: str) -> int:
        async with self.db.read() as conn:
            found = await store.seat_map(conn, session_id)
        assert found is not None
        return found.version


def plan_with_standing() -> SeatingPlan:
    seated = rows_plan("A-C", 6, category="stalls").model_dump()
    seated["categories"].append("standing")
    seated["areas"] = [{"id": "pit", "name": "Pit", "category": "standing", "capacity": 5}]
    return SeatingPlan.model_validate(seated)


def scheduled(plan: SeatingPlan | None = None, *sessions: str) -> ticketing.EventScheduled:
    return ticketing.EventScheduled(
        event_id="ev-1",
        store_id="store-1",
        seller_id="seller-1",
        title="Hamlet",
        currency="EUR",
        categories=(
            ticketing.PriceCategory(name="stalls", price=Decimal("30.00")),
            ticketing.PriceCategory(name="standing", price=Decimal("10.00")),
        ),
        sessions=tuple(
            ticketing.ScheduledSession(session_id=s, starts_at=SHOW) for s in sessions or ("s1",)
        ),
        venue_id="venue-1",
        plan=plan or plan_with_standing(),
        hold_seconds=600,
        max_per_order=10,
        max_per_buyer=10,
        cancel_until_hours=24,
    )


def opened(session_id: str = "s1", at: dt.datetime = NOW) -> ticketing.SalesOpened:
    return ticketing.SalesOpened(event_id="ev-1", session_id=session_id, opens_at=at)


def placed(
    order_id: str,
    *tickets: orders.TicketLine,
    items: tuple[orders.OrderLine, ...] = (),
    customer: str = "buyer-1",
) -> orders.OrderPlaced:
    return orders.OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        lines=items,
        total=Decimal("0"),
        currency="EUR",
        tickets=tickets,
    )


def seats(*seat_ids: str, session: str = "s1") -> orders.TicketLine:
    return orders.TicketLine(
        session_id=session,
        category="stalls",
        quantity=len(seat_ids),
        unit_price=Decimal("30.00"),
        seat_ids=seat_ids,
    )


def best(quantity: int, category: str = "stalls", session: str = "s1") -> orders.TicketLine:
    return orders.TicketLine(
        session_id=session, category=category, quantity=quantity, unit_price=Decimal("30.00")
    )
