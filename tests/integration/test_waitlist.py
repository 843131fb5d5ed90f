"""Waiting lists on real databases (SQLite and PostgreSQL): who may join, offers in order and
whole, an offer's expiry passing it on, an order taking it, leaving; and, over random walks of
all of these, that no place is ever in two holds and no entry is offered twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agora.auth import Principal
from agora.contracts import orders, ticketing
from agora.contracts.inventory import (
    PlacesAvailable,
    StockRejected,
    StockReserved,
    WaitlistOffered,
    WaitlistOfferLapsed,
)
from agora.contracts.seating import SeatingPlan, rows_plan
from agora.messaging import Database, Event
from agora.problems import ProblemError
from agora.services.inventory import store
from agora.services.inventory.domain import SessionNotFound
from agora.services.inventory.waitlist import Entry, EntryNotFound
from inventory_on_db import (
    DATABASES,
    NOW,
    Inventory,
    best,
    inventory_database,
    opened,
    placed,
    scheduled,
)

OFFER_TIME = dt.timedelta(hours=1)


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async for database in inventory_database(request, tmp_path, "waitlist"):
        yield database


def small_hall() -> SeatingPlan:
    """Six stalls in two rows of three, and a pit of four standing places."""
    seated = rows_plan("A-B", 3, category="stalls").model_dump()
    seated["categories"].append("standing")
    seated["areas"] = [{"id": "pit", "name": "Pit", "category": "standing", "capacity": 4}]
    return SeatingPlan.model_validate(seated)


@pytest.fixture
async def inventory(db: Database) -> Inventory:
    inventory = Inventory(db)
    await inventory.apply(scheduled(small_hall()))
    await inventory.apply(opened())
    return inventory


def buyer(user_id: str, role: Any = "buyer") -> Principal:
    return Principal(
        user_id=user_id,
        role=role,
        plan="free",
        email=f"{user_id}@example.test",
        session_id="sid",
        expires_at=NOW + dt.timedelta(days=1),
    )


async def join(
    inventory: Inventory, customer: str, quantity: int, category: str = "stalls"
) -> Entry:
    entry, _ = await inventory.within(
        lambda uow: inventory.handlers.waitlists.join(uow, customer, "s1", category, quantity)
    )
    return entry


async def entry(inventory: Inventory, entry_id: str) -> Entry:
    async with inventory.db.read() as conn:
        row = (
            await conn.execute(select(store.waitlist).where(store.waitlist.c.entry_id == entry_id))
        ).one()
    return Entry(**row._mapping)


async def sell_out_stalls(inventory: Inventory) -> None:
    """Orders o1, o2, o3 hold two stalls each (row A's first two, then the rest)."""
    for order_id in ("o1", "o2", "o3"):
        [reserved, *_] = await inventory.apply(placed(order_id, best(2)))
        assert isinstance(reserved, StockReserved)


def cancelled(order_id: str) -> orders.OrderCancelled:
    return orders.OrderCancelled(order_id=order_id, customer_id="buyer-1", reason="declined")


def taking(order_id: str, offer: WaitlistOffered, customer: str) -> orders.OrderPlaced:
    line = orders.TicketLine(
        session_id=offer.session_id,
        category=offer.category,
        quantity=offer.quantity,
        unit_price=Decimal("30.00"),
        waitlist_id=offer.entry_id,
    )
    return placed(order_id, line, customer=customer)


def offers(events: list[Event]) -> list[WaitlistOffered]:
    return [event for event in events if isinstance(event, WaitlistOffered)]


async def test_a_waiting_list_is_for_what_cannot_be_bought_now(inventory: Inventory) -> None:
    def refusal(error: pytest.ExceptionInfo[ProblemError]) -> tuple[int, str]:
        return error.value.status, error.value.body()["type"].rsplit("/", 1)[-1]

    with pytest.raises(ProblemError) as available:
        await join(inventory, "buyer-a", 2)
    assert refusal(available) == (409, "places-available")
    assert available.value.body()["available"] == 6

    await sell_out_stalls(inventory)
    first = await join(inventory, "buyer-a", 2)
    assert (first.state, first.position) == ("WAITING", 1)

    with pytest.raises(ProblemError) as again:
        await join(inventory, "buyer-a", 1)
    assert refusal(again) == (409, "already-waiting")
    assert again.value.body()["entry_id"] == first.entry_id
    with pytest.raises(ProblemError) as unknown:
        await join(inventory, "buyer-b", 1, category="balcony")
    assert refusal(unknown) == (422, "invalid-tickets")
    with pytest.raises(ProblemError) as too_many:
        await join(inventory, "buyer-b", 11)  # the event's cap per order is 10
    assert refusal(too_many) == (409, "ticket-limit")
    with pytest.raises(SessionNotFound):
        await inventory.within(
            lambda uow: inventory.handlers.waitlists.join(uow, "buyer-b", "nope", "stalls", 1)
        )

    await inventory.apply(ticketing.SalesClosed(event_id="ev-1", session_id="s1", closes_at=NOW))
    with pytest.raises(ProblemError) as closed:
        await join(inventory, "buyer-b", 1)
    assert refusal(closed) == (409, "sales-not-open")
    async with inventory.db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(store.waitlist)) == 1


async def test_places_back_go_to_the_first_entries_they_fit_whole(inventory: Inventory) -> None:
    await sell_out_stalls(inventory)
    trio = await join(inventory, "buyer-a", 3)
    single = await join(inventory, "buyer-b", 1)
    pair = await join(inventory, "buyer-c", 2)

    back = await inventory.apply(cancelled("o1"))  # two seats back

    [offer] = offers(back)
    assert (offer.entry_id, offer.customer_id, offer.quantity) == (single.entry_id, "buyer-b", 1)
    assert offer.expires_at == NOW + OFFER_TIME
    assert PlacesAvailable(session_id="s1", category="stalls", available=1) in back
    assert (await entry(inventory, trio.entry_id)).state == "WAITING"  # three do not fit in two
    assert (await entry(inventory, pair.entry_id)).state == "WAITING"  # two do not fit in one

    again = await inventory.apply(cancelled("o2"))  # three free now: the trio's turn

    [offer_to_trio] = offers(again)
    assert offer_to_trio.entry_id == trio.entry_id
    assert PlacesAvailable(session_id="s1", category="stalls", available=0) in again
    offered_seats = [p.seat_id for p in offer.places + offer_to_trio.places]
    assert len(set(offered_seats)) == 4
    states = await inventory.seat_states("s1")
    assert {states[seat] for seat in offered_seats} == {"HELD"}
    assert (await entry(inventory, pair.entry_id)).state == "WAITING"


async def test_an_offer_not_taken_passes_on_once_and_then_back_on_sale(
    inventory: Inventory,
) -> None:
    await sell_out_stalls(inventory)
    first = await join(inventory, "buyer-a", 2)
    second = await join(inventory, "buyer-b", 2)
    [offer] = offers(await inventory.apply(cancelled("o1")))
    assert offer.entry_id == first.entry_id

    _, before = await inventory.within(inventory.handlers.pass_on_lapsed_offers)
    assert before == []  # not run out yet

    inventory.now = offer.expires_at
    _, lapsed = await inventory.within(inventory.handlers.pass_on_lapsed_offers)

    assert lapsed[0] == WaitlistOfferLapsed(
        entry_id=first.entry_id, session_id="s1", customer_id="buyer-a", reason="the offer ran out"
    )
    [passed_on] = offers(lapsed)
    assert passed_on.entry_id == second.entry_id
    assert sorted(p.seat_id or "" for p in passed_on.places) == sorted(
        p.seat_id or "" for p in offer.places
    )
    _, twice = await inventory.within(inventory.handlers.pass_on_lapsed_offers)
    assert twice == []
    assert (await entry(inventory, first.entry_id)).state == "LAPSED"

    inventory.now = passed_on.expires_at
    _, last = await inventory.within(inventory.handlers.pass_on_lapsed_offers)

    assert offers(last) == []  # the first entry lapsed: it is never offered again
    assert PlacesAvailable(session_id="s1", category="stalls", available=2) in last
    states = await inventory.seat_states("s1")
    assert {states[p.seat_id or ""] for p in offer.places} == {"FREE"}


async def test_an_order_takes_its_own_open_offer_once(inventory: Inventory) -> None:
    await sell_out_stalls(inventory)
    waiting = await join(inventory, "buyer-a", 2)
    [offer] = offers(await inventory.apply(cancelled("o1")))

    [stranger] = await inventory.apply(taking("o-x", offer, customer="buyer-z"))
    assert isinstance(stranger, StockRejected)
    wrong = taking("o-y", offer, customer="buyer-a").tickets[0].model_copy(update={"quantity": 1})
    [mismatch] = await inventory.apply(placed("o-y", wrong, customer="buyer-a"))
    assert isinstance(mismatch, StockRejected)

    [reserved, *_] = await inventory.apply(taking("o-a", offer, customer="buyer-a"))

    assert isinstance(reserved, StockReserved)
    assert sorted(reserved.places, key=str) == sorted(offer.places, key=str)
    assert reserved.expires_at == NOW + dt.timedelta(seconds=600)  # the order's own hold
    taken = await entry(inventory, waiting.entry_id)
    assert (taken.state, taken.order_id) == ("TAKEN", "o-a")
    [twice] = await inventory.apply(taking("o-b", offer, customer="buyer-a"))
    assert isinstance(twice, StockRejected)
    assert "no longer open" in twice.reason

    inventory.now = offer.expires_at  # the offer's time is over, the order's hold is not
    _, swept = await inventory.within(inventory.handlers.pass_on_lapsed_offers)
    assert swept == []
    await inventory.apply(
        orders.OrderConfirmed(order_id="o-a", customer_id="buyer-a", total=0, currency="EUR")
    )
    states = await inventory.seat_states("s1")
    assert {states[p.seat_id or ""] for p in offer.places} == {"SOLD"}


async def test_an_offer_that_ran_out_cannot_be_taken_even_before_the_sweep(
    inventory: Inventory,
) -> None:
    await sell_out_stalls(inventory)
    await join(inventory, "buyer-a", 2)
    [offer] = offers(await inventory.apply(cancelled("o1")))

    inventory.now = offer.expires_at
    [late] = await inventory.apply(taking("o-a", offer, customer="buyer-a"))

    assert isinstance(late, StockRejected)
    assert "no longer open" in late.reason


async def test_leaving_the_list_passes_an_open_offer_on(inventory: Inventory) -> None:
    await sell_out_stalls(inventory)
    first = await join(inventory, "buyer-a", 2)
    second = await join(inventory, "buyer-b", 2)
    third = await join(inventory, "buyer-c", 1)
    [offer] = offers(await inventory.apply(cancelled("o1")))
    assert offer.entry_id == first.entry_id

    def leave(who: Principal, entry_id: str) -> Any:
        return inventory.within(lambda uow: inventory.handlers.waitlists.leave(uow, who, entry_id))

    with pytest.raises(EntryNotFound):
        await leave(buyer("buyer-b"), first.entry_id)  # another buyer's entry
    _, gone = await leave(buyer("buyer-c"), third.entry_id)
    assert gone == []
    _, passed = await leave(buyer("buyer-a"), first.entry_id)

    assert isinstance(passed[0], WaitlistOfferLapsed)
    assert [o.entry_id for o in offers(passed)] == [second.entry_id]
    _, again = await leave(buyer("buyer-a"), first.entry_id)
    assert again == []  # leaving twice is leaving once
    assert [(await entry(inventory, e.entry_id)).state for e in (first, second, third)] == [
        "LEFT",
        "OFFERED",
        "LEFT",
    ]
    [second_offer] = offers(passed)
    await inventory.apply(taking("o-b", second_offer, customer="buyer-b"))
    with pytest.raises(ProblemError) as taken:
        await leave(buyer("buyer-b"), second.entry_id)
    assert taken.value.status == 409


async def test_general_admission_places_are_offered_as_a_count(inventory: Inventory) -> None:
    [reserved, *_] = await inventory.apply(placed("gig", best(4, "standing")))
    assert isinstance(reserved, StockReserved)
    pair = await join(inventory, "buyer-a", 2, category="standing")

    back = await inventory.apply(cancelled("gig"))

    [offer] = offers(back)
    assert offer.entry_id == pair.entry_id
    assert [p.area_id for p in offer.places] == ["pit", "pit"]
    assert PlacesAvailable(session_id="s1", category="standing", available=2) in back
    [taken, *_] = await inventory.apply(taking("o-a", offer, customer="buyer-a"))
    assert isinstance(taken, StockReserved)
    await inventory.apply(
        orders.OrderConfirmed(order_id="o-a", customer_id="buyer-a", total=0, currency="EUR")
    )
    async with inventory.db.read() as conn:
        pit = (await conn.execute(select(store.areas))).one()
    assert pit.available == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_place_is_in_two_holds_and_no_entry_is_offered_twice(
    inventory: Inventory, seed: int
) -> None:
    """A random walk of orders, cancellations, joins, takes, leavings and expiries; after each
    step, every held place has one holder, every open offer holds exactly its party, every
    entry was offered at most once, and the change log replays to the map."""
    rng = random.Random(seed)
    held_orders: list[str] = []
    open_offers: dict[str, WaitlistOffered] = {}
    made: Counter[str] = Counter()
    customers = [f"buyer-{n}" for n in range(8)]
    await sell_out_stalls(inventory)
    await inventory.apply(placed("gig", best(4, "standing")))
    held_orders += ["o1", "o2", "o3", "gig"]
    for step in range(60):
        move = rng.choice(["order", "order", "cancel", "join", "join", "take", "leave", "expire"])
        if move == "order":
            category = rng.choice(["stalls", "standing"])
            order_id = f"o{step}"
            events = await inventory.apply(placed(order_id, best(rng.randint(1, 3), category)))
            if isinstance(events[0], StockReserved):
                held_orders.append(order_id)
        elif move == "cancel" and held_orders:
            events = await inventory.apply(
                cancelled(held_orders.pop(rng.randrange(len(held_orders))))
            )
        elif move == "join":
            with contextlib.suppress(ProblemError):  # places available, already waiting
                await join(
                    inventory,
                    rng.choice(customers),
                    rng.randint(1, 3),
                    rng.choice(["stalls", "standing"]),
                )
            events = []
        elif move == "take" and open_offers:
            offer = open_offers[rng.choice(sorted(open_offers))]
            events = await inventory.apply(taking(f"t{step}", offer, offer.customer_id))
            if isinstance(events[0], StockReserved):
                held_orders.append(f"t{step}")
                del open_offers[offer.entry_id]
        elif move == "leave" and open_offers:
            offer = open_offers[rng.choice(sorted(open_offers))]
            _, events = await inventory.within(
                lambda uow, o=offer: inventory.handlers.waitlists.leave(
                    uow, buyer(o.customer_id), o.entry_id
                )
            )
        elif move == "expire":
            inventory.now += OFFER_TIME
            _, events = await inventory.within(inventory.handlers.pass_on_lapsed_offers)
        else:
            continue
        for event in events:
            if isinstance(event, WaitlistOffered):
                made[event.entry_id] += 1
                open_offers[event.entry_id] = event
            elif isinstance(event, WaitlistOfferLapsed):
                open_offers.pop(event.entry_id, None)
        await _check_invariants(inventory, made)
    assert sum(made.values()) > 0, "the walk never made an offer: it proves nothing"


async def _check_invariants(inventory: Inventory, made: Counter[str]) -> None:
    assert all(count == 1 for count in made.values()), made
    holds = store.place_holds
    async with inventory.db.read() as conn:
        held_seats = (
            await conn.execute(
                select(holds.c.place_id, func.count())
                .where(holds.c.state.in_(["HELD", "SOLD"]), holds.c.kind == "seat")
                .group_by(holds.c.place_id)
            )
        ).all()
        assert all(count == 1 for _, count in held_seats), held_seats
        seat_states = {row.seat_id: row.state for row in await conn.execute(select(store.seats))}
        assert sum(state != "FREE" for state in seat_states.values()) == len(held_seats)
        area_taken = await conn.scalar(
            select(func.coalesce(func.sum(holds.c.quantity), 0)).where(
                holds.c.state.in_(["HELD", "SOLD"]), holds.c.kind == "area"
            )
        )
        pit = (await conn.execute(select(store.areas))).one()
        assert pit.available + int(area_taken or 0) == pit.capacity
        # The change log the seat map's streams read: one row per version, nothing missing,
        # and replayed onto the session as scheduled (all free) it gives the map as it is.
        changes = (
            await conn.execute(select(store.place_changes).order_by(store.place_changes.c.version))
        ).all()
        version = await conn.scalar(select(store.ticket_sessions.c.version))
        assert [row.version for row in changes] == list(range(2, int(version) + 1))
        replayed = dict.fromkeys(seat_states, "FREE")
        areas_left = {pit.area_id: pit.capacity}
        for row in changes:
            if row.kind == "seat":
                replayed[row.place_id] = row.state
            elif row.kind == "area":
                areas_left[row.place_id] = row.available
        assert replayed == seat_states
        assert areas_left == {pit.area_id: pit.available}
        for offered in await conn.execute(
            select(store.waitlist).where(store.waitlist.c.state == "OFFERED")
        ):
            places = await conn.scalar(
                select(func.coalesce(func.sum(holds.c.quantity), 0)).where(
                    holds.c.order_id == offered.entry_id, holds.c.state == "HELD"
                )
            )
            assert places == offered.quantity, offered
