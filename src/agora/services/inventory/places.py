"""How inventory holds places: a session's seats (named, or the best available) and its
general-admission areas, for one order at a time. The one rule, as for stock (`locking`):

    A place is taken by a conditional update (`state = 'HELD' WHERE state = 'FREE'`, `available
    = available - q WHERE available >= q`) inside the transaction that records the hold, with
    the session's row locked first, so that best-available never chooses from a stale map.

The condition alone already makes a double sale impossible (two holders of one seat cannot both
see it free); the session's lock makes the second chooser see the first one's seats as taken, so
that it picks others instead of failing. Every change grows the session's `version`.

`hold_seats(..., locking=False)` is the classic mistake (see which seats are free in one
transaction, take them in another) kept only so that the race test can prove it sees double
sales.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts.inventory import HeldPlace
from agora.contracts.orders import TicketLine
from agora.contracts.ticketing import EventScheduled, SalesWindow
from agora.messaging import Database, set_lock_timeout, utcnow
from agora.services.inventory.domain import PlacesUnavailable
from agora.services.inventory.seating import RowState, SeatState, best_available
from agora.services.inventory.store import (
    AREA,
    FREE,
    HELD,
    RELEASED,
    SALE,
    SEAT,
    SOLD,
    areas,
    place_changes,
    place_holds,
    seat_rows,
    seats,
    ticket_plans,
    ticket_sessions,
)

__all__ = ["CANDIDATE_ROWS", "PlaceRepository", "PlacesWanted", "hold_seats"]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """A place's new state: a seat's (FREE, HELD or SOLD), an area's free places, or (kind
    SALE) the session's sales window changed."""

    place_id: str
    kind: str
    state: str | None = None
    available: int | None = None


class PlacesWanted(Protocol):
    """Places asked for in one category of a session: the named `seat_ids`, or (none named)
    the `quantity` best available. An order's ticket line is one; so is a waiting-list entry."""

    @property
    def session_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def seat_ids(self) -> tuple[str, ...]: ...


CANDIDATE_ROWS = 8
"""Best-available looks at this many rows with room for the whole party at a time, best first,
instead of at every seat of the session (see `PlaceRepository.best`)."""


class PlaceRepository:
    """Sessions' places as inventory's handlers change them, in the unit of work's transaction."""

    def __init__(
        self,
        conn: AsyncConnection,
        log: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        """`log`: given each session whose places change in the transaction and its change
        log rows, to write them as it commits (a unit of work's); else they are written at
        once."""
        self._conn = conn
        self._log_later = log

    async def add_event(self, event: EventScheduled) -> bool:
        """Put every session of `event` on the map, all places free and sales closed; False
        (and nothing changed) if the event is known already."""
        if await self._conn.scalar(PLAN_EXISTS, {"event": event.event_id}):
            return False
        plan = event.plan
        await self._conn.execute(
            insert(ticket_plans).values(event_id=event.event_id, plan=plan.model_dump_json())
        )
        seat_values: list[dict[str, object]] = []
        free: Counter[tuple[str, str]] = Counter()
        ranks: dict[str, int] = {}
        for zone in plan.zones:
            for row in zone.rows:
                key = f"{zone.id}/{row.id}"
                ranks[key] = len(ranks)
                for position, seat in enumerate(row.seats):
                    free[(key, seat.category)] += 1
                    seat_values.append(
                        {
                            "seat_id": seat.id,
                            "row_key": key,
                            "position": position,
                            "category": seat.category,
                            "state": FREE,
                            "order_id": None,
                        }
                    )
        for session in event.sessions:
            await self._conn.execute(
                insert(ticket_sessions).values(
                    session_id=session.session_id,
                    event_id=event.event_id,
                    seller_id=event.seller_id,
                    starts_at=session.starts_at,
                    hold_seconds=event.hold_seconds,
                    max_per_order=event.max_per_order,
                    waitlist_offer_seconds=event.waitlist_offer_seconds,
                    opens_at=None,
                    closes_at=None,
                    version=1,
                )
            )
            if seat_values:
                await self._conn.execute(
                    insert(seats), [{**v, "session_id": session.session_id} for v in seat_values]
                )
                await self._conn.execute(
                    insert(seat_rows),
                    [
                        {
                            "session_id": session.session_id,
                            "row_key": key,
                            "category": category,
                            "rank": ranks[key],
                            "free": count,
                        }
                        for (key, category), count in free.items()
                    ],
                )
            if plan.areas:
                await self._conn.execute(
                    insert(areas),
                    [
                        {
                            "session_id": session.session_id,
                            "area_id": area.id,
                            "category": area.category,
                            "capacity": area.capacity,
                            "available": area.capacity,
                        }
                        for area in plan.areas
                    ],
                )
        return True

    async def window(self, session_id: str) -> SalesWindow | None:
        row = (await self._conn.execute(WINDOW, {"session": session_id})).first()
        if row is None:
            return None
        return SalesWindow(starts_at=row.starts_at, opens_at=row.opens_at, closes_at=row.closes_at)

    async def hold_seconds(self, session_id: str) -> int:
        return int(await self._conn.scalar(HOLD_SECONDS, {"session": session_id}) or 0)

    async def limits(self, session_id: str) -> tuple[int, dt.timedelta]:
        """The session's cap of places per order, and how long a waiting-list offer lasts."""
        row = (await self._conn.execute(LIMITS, {"session": session_id})).one()
        return int(row.max_per_order), dt.timedelta(seconds=row.waitlist_offer_seconds)

    async def open_sales(self, session_id: str, opens_at: dt.datetime) -> bool:
        """Sales open at `opens_at` and stay open until the session starts; False if unknown."""
        result = await self._conn.execute(
            update(ticket_sessions)
            .where(ticket_sessions.c.session_id == session_id)
            .values(opens_at=opens_at, closes_at=None)
        )
        if result.rowcount == 0:
            return False
        await self._log(session_id, [Change("", SALE)])
        return True

    async def close_sales(self, session_id: str, closes_at: dt.datetime) -> bool:
        result = await self._conn.execute(
            update(ticket_sessions)
            .where(ticket_sessions.c.session_id == session_id)
            .values(closes_at=closes_at)
        )
        if result.rowcount == 0:
            return False
        await self._log(session_id, [Change("", SALE)])
        return True

    async def lock(
        self, session_ids: Iterable[str], ending_orders: Sequence[str], *, timeout: float
    ) -> None:
        """Lock the sessions of `session_ids` and of the places `ending_orders` hold, in order
        (PostgreSQL row locks; SQLite's transaction holds the only write lock already)."""
        sessions = set(session_ids)
        if ending_orders:
            rows = await self._conn.execute(
                select(place_holds.c.session_id)
                .where(place_holds.c.order_id.in_(ending_orders))
                .distinct()
            )
            sessions.update(rows.scalars())
        if sessions and self._conn.dialect.name == "postgresql":
            await set_lock_timeout(self._conn, timeout)
            await self._conn.execute(
                select(ticket_sessions.c.session_id)
                .where(ticket_sessions.c.session_id.in_(sorted(sessions)))
                .order_by(ticket_sessions.c.session_id)
                .with_for_update()
            )

    async def hold(
        self,
        order_id: str,
        line: PlacesWanted,
        expires_at: dt.datetime,
        *,
        swept: bool = True,
    ) -> list[HeldPlace]:
        """Hold the line's places for the order (or a waiting list's entry: its offer is not
        `swept` with orders' holds), or raise `PlacesUnavailable`. Places of the order's earlier
        lines stay taken when a later one fails: the caller holds an order's lines in one
        savepoint."""
        session = line.session_id
        area_ids = list(
            (
                await self._conn.execute(AREAS_OF, {"session": session, "category": line.category})
            ).scalars()
        )
        if area_ids:
            if line.seat_ids:
                raise PlacesUnavailable(
                    session, f"{line.category} is general admission: ask for a quantity"
                )
            area_id = await self._take_area_places(session, area_ids, line.quantity)
            if area_id is None:
                raise PlacesUnavailable(
                    session, f"not {line.quantity} places left in {line.category}"
                )
            await self._record(order_id, session, [(area_id, AREA, line)], expires_at, swept)
            return [
                HeldPlace(session_id=session, category=line.category, area_id=area_id)
            ] * line.quantity
        wanted = line.seat_ids or await self.best(session, line.category, line.quantity)
        if not wanted:
            raise PlacesUnavailable(session, f"not {line.quantity} seats left in {line.category}")
        taken = await self._take_seats(order_id, session, line.category, wanted)
        if len(taken) != len(wanted):
            missing = sorted(set(wanted) - set(taken))
            raise PlacesUnavailable(session, f"not available: {', '.join(missing)}")
        await self._record(
            order_id, session, [(seat, SEAT, line) for seat in wanted], expires_at, swept
        )
        return [
            HeldPlace(session_id=session, category=line.category, seat_id=seat) for seat in wanted
        ]

    async def transfer(
        self, holder_id: str, order_id: str, expires_at: dt.datetime
    ) -> list[HeldPlace]:
        """What `holder_id` (a waiting list's entry) holds is the order's from now on, until
        `expires_at`, and swept as the order's hold."""
        moved = (
            await self._conn.execute(
                TRANSFER,
                {"holder": holder_id, "held": HELD, "order": order_id, "expires_at": expires_at},
            )
        ).all()
        places: list[HeldPlace] = []
        for row in sorted(moved, key=lambda r: r.place_id):
            session, category, place = row.session_id, row.category, row.place_id
            if row.kind == SEAT:
                await self._conn.execute(
                    update(seats)
                    .where(seats.c.session_id == session, seats.c.seat_id == place)
                    .values(order_id=order_id)
                )
                places.append(HeldPlace(session_id=session, category=category, seat_id=place))
            else:
                held = HeldPlace(session_id=session, category=category, area_id=place)
                places.extend([held] * row.quantity)
        return places

    async def best(self, session_id: str, category: str, quantity: int) -> tuple[str, ...] | None:
        """The best `quantity` free seats of `category` (`seating.best_available`), looking at
        `CANDIDATE_ROWS` rows with room for everyone at a time, best rows first; only when no
        row seats the party together, at every row with a free seat."""
        offset = 0
        while True:
            keys = list(
                (
                    await self._conn.execute(
                        ROWS_WITH_ROOM,
                        {
                            "session": session_id,
                            "category": category,
                            "room": quantity,
                            "limit": CANDIDATE_ROWS,
                            "offset": offset,
                        },
                    )
                ).scalars()
            )
            if not keys:
                break
            rows = await self._rows(session_id, keys)
            choice = best_available(rows, quantity, category)
            if choice is not None and _in_one_row(choice, rows):
                return choice
            offset += CANDIDATE_ROWS
        keys = list(
            (
                await self._conn.execute(
                    ROWS_WITH_ROOM,
                    {
                        "session": session_id,
                        "category": category,
                        "room": 1,
                        "limit": 1_000_000,
                        "offset": 0,
                    },
                )
            ).scalars()
        )
        if not keys:
            return None
        return best_available(await self._rows(session_id, keys), quantity, category)

    async def end(self, order_id: str, state: str) -> list[str]:
        """Move the order's held places to `state` (SOLD or RELEASED; released places are free
        again); returns the sessions whose map changed."""
        ended = (
            await self._conn.execute(
                END_PLACE_HOLDS, {"order": order_id, "held": HELD, "new_state": state}
            )
        ).all()
        by_session: dict[str, list[str]] = {}
        for row in ended:
            if row.kind == SEAT:
                by_session.setdefault(row.session_id, []).append(row.place_id)
            elif state == RELEASED:
                await self._return_area_places(row.session_id, row.place_id, row.quantity)
        sessions = sorted({row.session_id for row in ended})
        for session, seat_ids in by_session.items():
            if state == SOLD:
                await self._conn.execute(
                    update(seats)
                    .where(seats.c.session_id == session, seats.c.seat_id.in_(seat_ids))
                    .values(state=SOLD)
                )
                await self._log(session, [Change(seat, SEAT, SOLD) for seat in sorted(seat_ids)])
                continue
            freed = await self._conn.execute(
                update(seats)
                .where(seats.c.session_id == session, seats.c.seat_id.in_(seat_ids))
                .values(state=FREE, order_id=None)
                .returning(seats.c.row_key, seats.c.category)
            )
            await self._count_free(
                session, Counter((r.row_key, r.category) for r in freed), sign=+1
            )
            await self._log(session, [Change(seat, SEAT, FREE) for seat in sorted(seat_ids)])
        return sessions

    async def give_back(
        self, order_id: str, session_id: str, seat_id: str | None, area_id: str | None
    ) -> bool:
        """A sold place of the order is free again (its ticket was cancelled); False if it was
        not sold to the order."""
        if seat_id is not None:
            ended = await self._conn.execute(
                GIVE_BACK_SEAT,
                {"order": order_id, "session": session_id, "place": seat_id, "sold": SOLD},
            )
            if ended.rowcount != 1:
                return False
            freed = await self._conn.execute(
                update(seats)
                .where(seats.c.session_id == session_id, seats.c.seat_id == seat_id)
                .values(state=FREE, order_id=None)
                .returning(seats.c.row_key, seats.c.category)
            )
            await self._count_free(
                session_id, Counter((r.row_key, r.category) for r in freed), sign=+1
            )
            await self._log(session_id, [Change(seat_id, SEAT, FREE)])
        elif area_id is not None:
            fewer = await self._conn.execute(
                GIVE_BACK_AREA_PLACE,
                {"order": order_id, "session": session_id, "place": area_id, "sold": SOLD},
            )
            if fewer.rowcount != 1:
                return False
            await self._return_area_places(session_id, area_id, 1)
        else:
            return False
        return True

    async def free(self, session_id: str) -> dict[str, int]:
        """Free places of the session, by category (seats and areas)."""
        counts: dict[str, int] = {}
        for row in await self._conn.execute(FREE_SEATS, {"session": session_id}):
            counts[row.category] = counts.get(row.category, 0) + int(row.free)
        for row in await self._conn.execute(FREE_AREA_PLACES, {"session": session_id}):
            counts[row.category] = counts.get(row.category, 0) + int(row.free)
        return counts

    async def _take_area_places(
        self, session_id: str, area_ids: Sequence[str], quantity: int
    ) -> str | None:
        for area_id in area_ids:
            result = await self._conn.execute(
                TAKE_AREA_PLACES, {"session": session_id, "area": area_id, "quantity": quantity}
            )
            left = result.scalar_one_or_none()
            if left is not None:
                await self._log(session_id, [Change(area_id, AREA, available=left)])
                return area_id
        return None

    async def _return_area_places(self, session_id: str, area_id: str, quantity: int) -> None:
        left = await self._conn.scalar(
            RETURN_AREA_PLACES, {"session": session_id, "area": area_id, "quantity": quantity}
        )
        await self._log(session_id, [Change(area_id, AREA, available=int(left))])

    async def _log(self, session_id: str, changes: Sequence[Change]) -> None:
        """Give each change the session's next version and keep it in `place_changes`, in the
        transaction of the change: versions are the order of commits (the session's row is
        locked), and what a stream sends is what committed."""
        if not changes:
            return
        last = int(
            await self._conn.scalar(ADVANCE_VERSION, {"session": session_id, "by": len(changes)})
        )
        at = utcnow()
        first = last - len(changes) + 1
        rows = [
            {
                "session_id": session_id,
                "version": first + n,
                "place_id": change.place_id,
                "kind": change.kind,
                "state": change.state,
                "available": change.available,
                "committed_at": at,
            }
            for n, change in enumerate(changes)
        ]
        if self._log_later is None:
            await self._conn.execute(insert(place_changes), rows)
        else:
            self._log_later(session_id, rows)

    async def _take_seats(
        self, order_id: str, session_id: str, category: str, seat_ids: Sequence[str]
    ) -> list[str]:
        result = await self._conn.execute(
            update(seats)
            .where(
                seats.c.session_id == session_id,
                seats.c.seat_id.in_(seat_ids),
                seats.c.state == FREE,
                seats.c.category == category,
            )
            .values(state=HELD, order_id=order_id)
            .returning(seats.c.seat_id, seats.c.row_key, seats.c.category)
        )
        taken = result.all()
        await self._count_free(session_id, Counter((r.row_key, r.category) for r in taken), sign=-1)
        await self._log(
            session_id, [Change(seat, SEAT, HELD) for seat in sorted(r.seat_id for r in taken)]
        )
        return [row.seat_id for row in taken]

    async def _count_free(
        self, session_id: str, changes: Counter[tuple[str, str]], *, sign: int
    ) -> None:
        if changes:
            await self._conn.execute(
                COUNT_FREE,
                [
                    {"session": session_id, "row": row, "of_category": category, "by": sign * n}
                    for (row, category), n in changes.items()
                ],
            )

    async def _record(
        self,
        order_id: str,
        session_id: str,
        places: Sequence[tuple[str, str, PlacesWanted]],
        expires_at: dt.datetime,
        swept: bool = True,
    ) -> None:
        await self._conn.execute(
            insert(place_holds),
            [
                {
                    "order_id": order_id,
                    "session_id": session_id,
                    "place_id": place_id,
                    "kind": kind,
                    "category": line.category,
                    "quantity": line.quantity if kind == AREA else 1,
                    "state": HELD,
                    "expires_at": expires_at,
                    "expiry_announced": not swept,
                }
                for place_id, kind, line in places
            ],
        )

    async def _rows(self, session_id: str, keys: Sequence[str]) -> list[RowState]:
        result = await self._conn.execute(SEATS_OF_ROWS, {"session": session_id, "rows": keys})
        by_row: dict[str, list[SeatState]] = {key: [] for key in keys}
        for row in result:
            by_row[row.row_key].append(
                SeatState(seat_id=row.seat_id, category=row.category, free=row.state == FREE)
            )
        return [RowState(key=key, seats=tuple(by_row[key])) for key in keys]


def _in_one_row(choice: Sequence[str], rows: Sequence[RowState]) -> bool:
    chosen = set(choice)
    return any(chosen <= {seat.seat_id for seat in row.seats} for row in rows)


# Prepared statements (docs/architecture.md).
PLAN_EXISTS = (
    select(func.count())
    .select_from(ticket_plans)
    .where(ticket_plans.c.event_id == bindparam("event"))
)
WINDOW = select(
    ticket_sessions.c.starts_at, ticket_sessions.c.opens_at, ticket_sessions.c.closes_at
).where(ticket_sessions.c.session_id == bindparam("session"))
LIMITS = select(ticket_sessions.c.max_per_order, ticket_sessions.c.waitlist_offer_seconds).where(
    ticket_sessions.c.session_id == bindparam("session")
)
TRANSFER = (
    update(place_holds)
    .where(place_holds.c.order_id == bindparam("holder"), place_holds.c.state == bindparam("held"))
    .values(order_id=bindparam("order"), expires_at=bindparam("expires_at"), expiry_announced=False)
    .returning(
        place_holds.c.session_id,
        place_holds.c.place_id,
        place_holds.c.kind,
        place_holds.c.category,
        place_holds.c.quantity,
    )
)
HOLD_SECONDS = select(ticket_sessions.c.hold_seconds).where(
    ticket_sessions.c.session_id == bindparam("session")
)
ADVANCE_VERSION = (
    update(ticket_sessions)
    .where(ticket_sessions.c.session_id == bindparam("session"))
    .values(version=ticket_sessions.c.version + bindparam("by"))
    .returning(ticket_sessions.c.version)
)
AREAS_OF = (
    select(areas.c.area_id)
    .where(areas.c.session_id == bindparam("session"), areas.c.category == bindparam("category"))
    .order_by(areas.c.area_id)
)
TAKE_AREA_PLACES = (
    update(areas)
    .where(
        areas.c.session_id == bindparam("session"),
        areas.c.area_id == bindparam("area"),
        areas.c.available >= bindparam("quantity"),
    )
    .values(available=areas.c.available - bindparam("quantity"))
    .returning(areas.c.available)
)
RETURN_AREA_PLACES = (
    update(areas)
    .where(areas.c.session_id == bindparam("session"), areas.c.area_id == bindparam("area"))
    .values(available=areas.c.available + bindparam("quantity"))
    .returning(areas.c.available)
)
ROWS_WITH_ROOM = (
    select(seat_rows.c.row_key)
    .where(
        seat_rows.c.session_id == bindparam("session"),
        seat_rows.c.category == bindparam("category"),
        seat_rows.c.free >= bindparam("room"),
    )
    .order_by(seat_rows.c.rank)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
SEATS_OF_ROWS = (
    select(seats.c.seat_id, seats.c.row_key, seats.c.category, seats.c.state)
    .where(
        seats.c.session_id == bindparam("session"),
        seats.c.row_key.in_(bindparam("rows", expanding=True)),
    )
    .order_by(seats.c.row_key, seats.c.position)
)
COUNT_FREE = (
    update(seat_rows)
    .where(
        seat_rows.c.session_id == bindparam("session"),
        seat_rows.c.row_key == bindparam("row"),
        seat_rows.c.category == bindparam("of_category"),
    )
    .values(free=seat_rows.c.free + bindparam("by"))
)
END_PLACE_HOLDS = (
    update(place_holds)
    .where(place_holds.c.order_id == bindparam("order"), place_holds.c.state == bindparam("held"))
    .values(state=bindparam("new_state"))
    .returning(
        place_holds.c.session_id,
        place_holds.c.place_id,
        place_holds.c.kind,
        place_holds.c.quantity,
    )
)


async def hold_seats(
    db: Database,
    order_id: str,
    line: TicketLine,
    expires_at: dt.datetime,
    *,
    locking: bool = True,
    timeout: float = 5.0,
) -> tuple[str, ...] | None:
    """Hold the line's seats (named or best available) in a transaction of its own, as a
    consumer's batch does; returns them, or None if they cannot be had."""
    if locking:
        try:
            async with db.write() as conn:
                places = PlaceRepository(conn)
                await places.lock([line.session_id], [], timeout=timeout)
                held = await places.hold(order_id, line, expires_at)
        except PlacesUnavailable:
            return None
        return tuple(place.seat_id for place in held if place.seat_id is not None)
    # Test-only: check, then act, in two transactions. Other writers run in between.
    async with db.read() as conn:
        places = PlaceRepository(conn)
        wanted = line.seat_ids or await places.best(line.session_id, line.category, line.quantity)
        if not wanted:
            return None
        free = set(
            (
                await conn.execute(
                    select(seats.c.seat_id).where(
                        seats.c.session_id == line.session_id,
                        seats.c.seat_id.in_(wanted),
                        seats.c.state == FREE,
                    )
                )
            ).scalars()
        )
    if free != set(wanted):
        return None
    async with db.write() as conn:
        # One seat at a time in id order: the mistake under test is the stale look, not a
        # deadlock between two multi-row updates taking the same rows in other orders.
        for seat_id in sorted(wanted):
            await conn.execute(
                update(seats)
                .where(seats.c.session_id == line.session_id, seats.c.seat_id == seat_id)
                .values(state=HELD, order_id=order_id)
            )
        await PlaceRepository(conn)._record(
            order_id, line.session_id, [(seat, SEAT, line) for seat in wanted], expires_at
        )
    return tuple(wanted)


THE_SOLD_PLACE = (
    place_holds.c.order_id == bindparam("order"),
    place_holds.c.session_id == bindparam("session"),
    place_holds.c.place_id == bindparam("place"),
    place_holds.c.state == bindparam("sold"),
)
GIVE_BACK_SEAT = update(place_holds).where(*THE_SOLD_PLACE).values(state=RELEASED)
# An area's places of one order are one row: one place fewer (a row of none stays, counting 0).
GIVE_BACK_AREA_PLACE = (
    update(place_holds)
    .where(*THE_SOLD_PLACE, place_holds.c.quantity >= 1)
    .values(quantity=place_holds.c.quantity - 1)
)
FREE_SEATS = (
    select(seat_rows.c.category, func.sum(seat_rows.c.free).label("free"))
    .where(seat_rows.c.session_id == bindparam("session"))
    .group_by(seat_rows.c.category)
)
FREE_AREA_PLACES = (
    select(areas.c.category, func.sum(areas.c.available).label("free"))
    .where(areas.c.session_id == bindparam("session"))
    .group_by(areas.c.category)
)
