"""Inventory's invariants over its own tables, read-only (`agora check`): stock conserved per
product, every seat in one state held by at most one order, each session's counts consistent;
and the facts the checks across services need (the holds of each order)."""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.audit import Verdict, verdict
from agora.services.inventory.store import (
    AREA,
    FREE,
    HELD,
    SEAT,
    SOLD,
    areas,
    holds,
    place_holds,
    seat_rows,
    seats,
    stock,
)

__all__ = ["HoldStates", "hold_states_by_order", "invariants"]

SCOPE = "inventory"
LIVE = (HELD, SOLD)

HoldStates = dict[str, set[str]]
"""The states of each order's holds (HELD, SOLD, RELEASED), by order id."""


async def invariants(conn: AsyncConnection) -> list[Verdict]:
    """Read in one snapshot (`Database.snapshot`): the tables are compared with each other."""
    return [
        await _stock_conserved(conn),
        await _seats_in_one_state(conn),
        await _seats_held_once(conn),
        await _free_seats_counted(conn),
        await _area_places_conserved(conn),
    ]


async def _stock_conserved(conn: AsyncConnection) -> Verdict:
    """available + reserved + sold = the units stocked, none negative, and reserved and sold are
    what the holds say."""
    by_hold: defaultdict[str, Counter[str]] = defaultdict(Counter)
    rows = await conn.execute(
        select(holds.c.product_id, holds.c.state, func.sum(holds.c.quantity))
        .where(holds.c.state.in_(LIVE))
        .group_by(holds.c.product_id, holds.c.state)
    )
    for product_id, state, quantity in rows:
        by_hold[product_id][state] = int(quantity)
    products = (await conn.execute(select(stock))).all()
    offenders = [
        row.product_id
        for row in products
        if min(row.available, row.reserved, row.sold) < 0
        or row.available + row.reserved + row.sold != row.stocked
        or row.reserved != by_hold[row.product_id][HELD]
        or row.sold != by_hold[row.product_id][SOLD]
    ]
    offenders += sorted(set(by_hold) - {row.product_id for row in products})
    return verdict(
        "stock conserved",
        SCOPE,
        checked=len(products),
        noun="products",
        offenders=offenders,
        why="not available + held + sold = stocked",
    )


async def _seats_in_one_state(conn: AsyncConnection) -> Verdict:
    """A free seat belongs to no order and has no live hold; a held or sold one belongs to the
    order whose live hold of it is in that same state."""
    live: defaultdict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for row in await conn.execute(
        select(
            place_holds.c.session_id,
            place_holds.c.place_id,
            place_holds.c.state,
            place_holds.c.order_id,
        ).where(place_holds.c.kind == SEAT, place_holds.c.state.in_(LIVE))
    ):
        live[(row.session_id, row.place_id)].add((row.state, row.order_id))
    checked, offenders = 0, []
    for row in await conn.execute(
        select(seats.c.session_id, seats.c.seat_id, seats.c.state, seats.c.order_id)
    ):
        checked += 1
        held = live.get((row.session_id, row.seat_id), set())
        if row.state == FREE:
            sound = not held and row.order_id is None
        else:
            sound = (row.state, row.order_id) in held  # held twice: `_seats_held_once`
        if not sound:
            offenders.append(f"{row.session_id}/{row.seat_id}")
    return verdict(
        "seats in one state",
        SCOPE,
        checked=checked,
        noun="seats",
        offenders=offenders,
        why="not as their holds say",
    )


async def _seats_held_once(conn: AsyncConnection) -> Verdict:
    """No seat held or sold to two orders at once."""
    per_seat = await conn.execute(
        select(place_holds.c.session_id, place_holds.c.place_id, func.count())
        .where(place_holds.c.kind == SEAT, place_holds.c.state.in_(LIVE))
        .group_by(place_holds.c.session_id, place_holds.c.place_id)
    )
    counts = {f"{session}/{seat}": int(count) for session, seat, count in per_seat}
    return verdict(
        "seats held once",
        SCOPE,
        checked=len(counts),
        noun="seats held or sold",
        offenders=[seat for seat, count in counts.items() if count > 1],
        why="more than once",
    )


async def _free_seats_counted(conn: AsyncConnection) -> Verdict:
    """The free count of each row and category (what best-available reads) is its free seats."""
    free = Counter(
        {
            (session, row, category): int(count)
            for session, row, category, count in await conn.execute(
                select(seats.c.session_id, seats.c.row_key, seats.c.category, func.count())
                .where(seats.c.state == FREE)
                .group_by(seats.c.session_id, seats.c.row_key, seats.c.category)
            )
        }
    )
    counted = {
        (row.session_id, row.row_key, row.category): row.free
        for row in await conn.execute(select(seat_rows))
    }
    offenders = {
        f"{session}/{row}/{category}"
        for (session, row, category) in set(free) | set(counted)
        if counted.get((session, row, category)) != free[(session, row, category)]
    }
    return verdict(
        "free seats counted",
        SCOPE,
        checked=len(counted),
        noun="rows per category",
        offenders=offenders,
        why="counted otherwise than their free seats",
    )


async def _area_places_conserved(conn: AsyncConnection) -> Verdict:
    """An area's capacity is its free places plus those held or sold."""
    taken = Counter(
        {
            (session, area): int(quantity)
            for session, area, quantity in await conn.execute(
                select(
                    place_holds.c.session_id,
                    place_holds.c.place_id,
                    func.sum(place_holds.c.quantity),
                )
                .where(place_holds.c.kind == AREA, place_holds.c.state.in_(LIVE))
                .group_by(place_holds.c.session_id, place_holds.c.place_id)
            )
        }
    )
    rows = (await conn.execute(select(areas))).all()
    offenders = [
        f"{row.session_id}/{row.area_id}"
        for row in rows
        if row.available < 0 or row.available + taken[(row.session_id, row.area_id)] != row.capacity
    ]
    return verdict(
        "area places conserved",
        SCOPE,
        checked=len(rows),
        noun="areas",
        offenders=offenders,
        why="not capacity = free + held + sold",
    )


async def hold_states_by_order(conn: AsyncConnection) -> HoldStates:
    """The states of each order's holds, of stock and of places."""
    states: dict[str, set[str]] = defaultdict(set)
    for table in (holds, place_holds):
        for order_id, state in await conn.execute(
            select(table.c.order_id, table.c.state).distinct()
        ):
            states[order_id].add(state)
    return dict(states)
