"""Inventory's places on real databases (SQLite and PostgreSQL): a scheduled event's sessions on
the map, sales windows, named seats and best available held all or nothing with the order's
stock, general-admission quotas, sale and release, expiry, and the seat map's version."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from agora.contracts import orders, ticketing
from agora.contracts.inventory import (
    AvailabilityChanged,
    HeldPlace,
    PlacesAvailable,
    ReservedLine,
    StockRejected,
    StockReleased,
    StockReserved,
)
from agora.messaging import Database
from agora.services.inventory import store
from agora.services.inventory.workers import announce_expired_holds
from inventory_on_db import (
    DATABASES,
    NOW,
    Inventory,
    Unit,
    best,
    inventory_database,
    opened,
    placed,
    scheduled,
    seats,
)


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async for database in inventory_database(request, tmp_path, "seatholds"):
        yield database


@pytest.fixture
async def inventory(db: Database) -> Inventory:
    inventory = Inventory(db)
    await inventory.apply(scheduled())
    return inventory


async def test_a_scheduled_session_is_all_free_and_closed_for_sale(inventory: Inventory) -> None:
    states = await inventory.seat_states("s1")
    assert len(states) == 18
    assert set(states.values()) == {"FREE"}

    [rejected] = await inventory.apply(placed("o1", seats("main-A-1")))

    assert isinstance(rejected, StockRejected)
    assert rejected.session_id == "s1"
    assert "sales have not opened" in rejected.reason
    assert (await inventory.seat_states("s1"))["main-A-1"] == "FREE"


async def test_scheduling_the_same_event_twice_changes_nothing(inventory: Inventory) -> None:
    version = await inventory.version("s1")
    await inventory.apply(scheduled())
    assert await inventory.version("s1") == version


async def test_holds_are_refused_before_opening_and_after_closing(inventory: Inventory) -> None:
    await inventory.apply(opened(at=NOW + dt.timedelta(hours=1)))
    [early] = await inventory.apply(placed("o1", best(1)))
    assert isinstance(early, StockRejected)
    assert "sales open at" in early.reason

    inventory.now = NOW + dt.timedelta(hours=2)
    [held] = await inventory.apply(placed("o2", best(1)))
    assert isinstance(held, StockReserved)

    await inventory.apply(
        ticketing.SalesClosed(event_id="ev-1", session_id="s1", closes_at=inventory.now)
    )
    [late] = await inventory.apply(placed("o3", best(1)))
    assert isinstance(late, StockRejected)
    assert "sales have closed" in late.reason


async def test_a_named_seat_is_held_once(inventory: Inventory) -> None:
    await inventory.apply(opened())

    [first] = await inventory.apply(placed("o1", seats("main-B-3", "main-B-4")))
    [second] = await inventory.apply(placed("o2", seats("main-B-4", "main-B-5")))

    assert isinstance(first, StockReserved)
    assert first.places == (
        HeldPlace(session_id="s1", category="stalls", seat_id="main-B-3"),
        HeldPlace(session_id="s1", category="stalls", seat_id="main-B-4"),
    )
    assert first.expires_at == NOW + dt.timedelta(seconds=600)  # the event's hold, shorter
    assert isinstance(second, StockRejected)
    assert "main-B-4" in second.reason
    states = await inventory.seat_states("s1")
    assert (states["main-B-3"], states["main-B-4"], states["main-B-5"]) == ("HELD",) * 2 + ("FREE",)


async def test_best_available_seats_a_party_together_in_the_best_row(
    inventory: Inventory,
) -> None:
    await inventory.apply(opened())
    await inventory.apply(placed("o1", seats("main-A-3")))

    [held] = await inventory.apply(placed("o2", best(4)))

    assert isinstance(held, StockReserved)
    chosen = [place.seat_id for place in held.places]
    assert all(seat and seat.startswith("main-B-") for seat in chosen), chosen  # A has no 4
    numbers = sorted(int(str(seat).rsplit("-", 1)[1]) for seat in chosen)
    assert numbers == list(range(numbers[0], numbers[0] + 4))


async def test_an_order_is_all_or_nothing_over_stock_and_places(inventory: Inventory) -> None:
    async with inventory.db.write() as conn:
        await conn.execute(
            insert(store.stock).values(product_id="mug", available=1, reserved=0, sold=0)
        )
    await inventory.apply(opened())
    mugs = (orders.OrderLine(product_id="mug", quantity=1, unit_price=Decimal("8.00")),)

    [refused] = await inventory.apply(placed("o1", best(2, "standing"), best(19), items=mugs))
    held, mug_left = await inventory.apply(placed("o2", best(2, "standing"), best(2), items=mugs))

    assert isinstance(refused, StockRejected)
    assert "not 19 seats" in refused.reason
    assert isinstance(held, StockReserved)
    assert held.lines == (ReservedLine(product_id="mug", quantity=1),)
    assert mug_left == AvailabilityChanged(product_id="mug", available=0)
    assert [p.area_id for p in held.places if p.category == "standing"] == ["pit", "pit"]
    async with inventory.db.read() as conn:
        mug = (await conn.execute(select(store.stock))).one()
        pit = (await conn.execute(select(store.areas))).one()
    assert (mug.available, mug.reserved) == (0, 1)  # the refused order took nothing back
    assert pit.available == 3


async def test_general_admission_is_a_counted_quota(inventory: Inventory) -> None:
    await inventory.apply(opened())
    [four] = await inventory.apply(placed("o1", best(4, "standing")))
    [two] = await inventory.apply(placed("o2", best(2, "standing")))
    [named] = await inventory.apply(
        placed(
            "o3",
            orders.TicketLine(
                session_id="s1",
                category="standing",
                quantity=1,
                unit_price=Decimal("10"),
                seat_ids=("pit",),
            ),
        )
    )
    assert isinstance(four, StockReserved)
    assert len(four.places) == 4
    assert isinstance(two, StockRejected)
    assert "not 2 places left in standing" in two.reason
    assert isinstance(named, StockRejected)
    assert "general admission" in named.reason


async def test_confirmed_seats_are_sold_and_released_ones_are_free_again(
    inventory: Inventory,
) -> None:
    await inventory.apply(opened())
    await inventory.apply(placed("o1", seats("main-C-1"), best(2, "standing")))
    await inventory.apply(placed("o2", seats("main-C-2"), best(3, "standing")))
    version = await inventory.version("s1")

    await inventory.apply(
        orders.OrderConfirmed(order_id="o1", customer_id="buyer-1", total=0, currency="EUR")
    )
    released = await inventory.apply(
        orders.OrderCancelled(order_id="o2", customer_id="buyer-1", reason="payment declined")
    )

    states = await inventory.seat_states("s1")
    assert (states["main-C-1"], states["main-C-2"]) == ("SOLD", "FREE")
    assert released == [
        PlacesAvailable(session_id="s1", category="stalls", available=17),
        PlacesAvailable(session_id="s1", category="standing", available=3),
        StockReleased(order_id="o2", reason="payment declined"),
    ]
    async with inventory.db.read() as conn:
        pit = (await conn.execute(select(store.areas))).one()
    assert pit.available == 3  # 2 sold, 3 back
    # One version per change: main-C-1 sold, main-C-2 free, the pit's places back.
    assert await inventory.version("s1") == version + 3
    [again] = await inventory.apply(placed("o3", seats("main-C-2")))
    assert isinstance(again, StockReserved)


async def test_an_order_of_places_alone_expires(inventory: Inventory) -> None:
    await inventory.apply(opened())
    await inventory.apply(placed("o1", best(2)))
    async with inventory.db.read() as conn:
        upcoming = await store.next_expiry(conn)
    assert upcoming == NOW + dt.timedelta(seconds=600)

    async with inventory.db.write() as conn:
        unit = Unit(conn, inventory.emitted)
        # The sweeper compares with the real clock: the hold (in 2026-12-01) is long past.
        assert await announce_expired_holds(unit) == ["o1"]  # type: ignore[arg-type]
        assert await announce_expired_holds(unit) == []  # type: ignore[arg-type]


async def test_a_hold_ends_once_expired_then_confirmed_or_confirmed_then_expired(
    inventory: Inventory,
) -> None:
    """The race of a hold's expiry with its payment, as inventory sees it: whichever end comes
    first decides; the other changes nothing (orders never sends both, and payments refunds a
    charge that lands after the expiry)."""
    await inventory.apply(opened())
    await inventory.apply(placed("late", seats("main-A-1")))
    await inventory.apply(placed("paid", seats("main-A-2")))
    confirm = orders.OrderConfirmed
    expire = orders.OrderExpired

    await inventory.apply(expire(order_id="late", customer_id="buyer-1"))
    assert (
        await inventory.apply(
            confirm(order_id="late", customer_id="buyer-1", total=0, currency="EUR")
        )
        == []
    )
    await inventory.apply(confirm(order_id="paid", customer_id="buyer-1", total=0, currency="EUR"))
    assert await inventory.apply(expire(order_id="paid", customer_id="buyer-1")) == []

    states = await inventory.seat_states("s1")
    assert (states["main-A-1"], states["main-A-2"]) == ("FREE", "SOLD")
    [again] = await inventory.apply(placed("next", seats("main-A-1")))
    assert isinstance(again, StockReserved)


async def test_a_cancelled_tickets_place_goes_back_on_sale(inventory: Inventory) -> None:
    await inventory.apply(opened())
    await inventory.apply(placed("o1", seats("main-B-1", "main-B-2"), best(3, "standing")))
    await inventory.apply(
        orders.OrderConfirmed(order_id="o1", customer_id="buyer-1", total=0, currency="EUR")
    )

    def cancelled(**place: str) -> ticketing.TicketCancelled:
        return ticketing.TicketCancelled(
            ticket_id=f"t-{place}",
            order_id="o1",
            customer_id="buyer-1",
            session_id="s1",
            category="standing" if "area_id" in place else "stalls",
            price=Decimal("10"),
            currency="EUR",
            reason="cancelled by the buyer",
            **place,
        )

    version = await inventory.version("s1")
    await inventory.apply(cancelled(seat_id="main-B-1"))
    await inventory.apply(cancelled(area_id="pit"))
    await inventory.apply(cancelled(seat_id="main-C-6"))  # not this order's: nothing

    states = await inventory.seat_states("s1")
    assert (states["main-B-1"], states["main-B-2"], states["main-C-6"]) == ("FREE", "SOLD", "FREE")
    async with inventory.db.read() as conn:
        pit = (await conn.execute(select(store.areas))).one()
        rows = {r.row_key: r.free for r in await conn.execute(select(store.seat_rows))}
    assert pit.available == 5 - 3 + 1
    assert rows["main/B"] == 6 - 1
    assert await inventory.version("s1") == version + 2
    [again] = await inventory.apply(placed("o2", seats("main-B-1")))
    assert isinstance(again, StockReserved)
