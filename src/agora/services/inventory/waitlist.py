"""Waiting lists of sold-out sessions, as inventory keeps them beside the places they wait for.

An entry asks for `quantity` places in one category of one session and is served whole or not
at all. When places come back, the entries are served in the order they joined: the first whose
party the free places fit gets them as a hold of its own (in `place_holds`, under the entry's
id, never swept as an order's hold is) until the offer runs out. An entry that does not fit yet
keeps its place in the queue while later, smaller ones are served. An offer is made once: every
change of an entry's state is conditional on the state it leaves, so no entry is offered twice
and no place is in two offers (a place held for an offer is not free).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.problems import NotFound, ProblemError
from agora.services.inventory.store import HELD, OFFERED, TAKEN, WAITING, place_holds, waitlist

__all__ = [
    "AlreadyWaiting",
    "Entry",
    "EntryNotFound",
    "NotOnTheList",
    "PlacesStillAvailable",
    "WaitlistRefused",
    "WaitlistRepository",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    session_id: str
    customer_id: str
    category: str
    quantity: int
    state: str
    joined_at: dt.datetime
    position: int
    offered_at: dt.datetime | None = None
    offer_expires_at: dt.datetime | None = None
    order_id: str | None = None
    ended_at: dt.datetime | None = None

    # What `PlaceRepository.hold` asks of the places wanted: the best available of a category.
    seat_ids: tuple[str, ...] = ()


class EntryNotFound(NotFound):
    def __init__(self, entry_id: str) -> None:
        super().__init__(
            "waitlist-entry-not-found", "Waiting-list entry not found", f"no entry {entry_id}"
        )


class PlacesStillAvailable(ProblemError):
    """A waiting list is for what cannot be bought now."""

    def __init__(self, session_id: str, category: str, available: int) -> None:
        super().__init__(
            409,
            "places-available",
            "Places are available",
            f"{available} {category} places of session {session_id} are on sale: order them",
            session_id=session_id,
            category=category,
            available=available,
        )


class AlreadyWaiting(ProblemError):
    def __init__(self, session_id: str, entry_id: str) -> None:
        super().__init__(
            409,
            "already-waiting",
            "Already on the waiting list",
            f"you are on the waiting list of session {session_id} already (entry {entry_id})",
            session_id=session_id,
            entry_id=entry_id,
        )


class WaitlistRefused(ProblemError):
    """The session's sales are not open, the category is unknown, or the party is too big."""

    def __init__(self, status: int, slug: str, title: str, detail: str, session_id: str) -> None:
        super().__init__(status, slug, title, detail, session_id=session_id)


class NotOnTheList(ProblemError):
    def __init__(self, entry_id: str, order_id: str | None) -> None:
        super().__init__(
            409,
            "waitlist-offer-taken",
            "The offer was taken",
            f"entry {entry_id}'s places were ordered (order {order_id}): cancel the order or "
            "its tickets instead",
            entry_id=entry_id,
            order_id=order_id,
        )


class WaitlistRepository:
    """The waiting lists as inventory's handlers change them, in the unit of work's
    transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def join(
        self,
        entry_id: str,
        session_id: str,
        customer_id: str,
        category: str,
        quantity: int,
        now: dt.datetime,
    ) -> Entry:
        position = int(await self._conn.scalar(LAST_POSITION, {"session": session_id}) or 0) + 1
        values = {
            "entry_id": entry_id,
            "session_id": session_id,
            "customer_id": customer_id,
            "category": category,
            "quantity": quantity,
            "state": WAITING,
            "joined_at": now,
            "position": position,
        }
        await self._conn.execute(insert(waitlist).values(**values))
        return Entry(**values)  # type: ignore[arg-type]

    async def get(self, entry_id: str) -> Entry | None:
        row = (await self._conn.execute(ENTRY, {"entry": entry_id})).first()
        return None if row is None else Entry(**row._mapping)

    async def active(self, session_id: str, customer_id: str) -> Entry | None:
        """The customer's entry waiting (or offered places) on the session's list."""
        row = (
            await self._conn.execute(ACTIVE, {"session": session_id, "customer": customer_id})
        ).first()
        return None if row is None else Entry(**row._mapping)

    async def waiting(self, session_id: str) -> list[Entry]:
        """The session's entries not yet offered anything, first come first."""
        rows = await self._conn.execute(QUEUE, {"session": session_id})
        return [Entry(**row._mapping) for row in rows]

    async def offer(self, entry_id: str, now: dt.datetime, expires_at: dt.datetime) -> bool:
        """The entry's places are held for it until `expires_at`; False if it was not waiting."""
        result = await self._conn.execute(
            update(waitlist)
            .where(waitlist.c.entry_id == entry_id, waitlist.c.state == WAITING)
            .values(state=OFFERED, offered_at=now, offer_expires_at=expires_at)
        )
        return result.rowcount == 1

    async def take(self, entry_id: str, order_id: str, now: dt.datetime) -> bool:
        """The open offer goes to the order; False if it is not open any more."""
        result = await self._conn.execute(
            update(waitlist)
            .where(
                waitlist.c.entry_id == entry_id,
                waitlist.c.state == OFFERED,
                waitlist.c.offer_expires_at > now,
            )
            .values(state=TAKEN, order_id=order_id, ended_at=now)
        )
        return result.rowcount == 1

    async def end(self, entry_id: str, state: str, now: dt.datetime, *, was: Sequence[str]) -> bool:
        """The entry leaves the list (LAPSED or LEFT) if it is in one of the states `was`."""
        result = await self._conn.execute(
            update(waitlist)
            .where(waitlist.c.entry_id == entry_id, waitlist.c.state.in_(was))
            .values(state=state, ended_at=now)
        )
        return result.rowcount == 1

    async def lapsed(self, now: dt.datetime, limit: int) -> list[Entry]:
        """Offers that ran out by `now`, the first to run out first."""
        rows = await self._conn.execute(LAPSED, {"now": now, "limit": limit})
        return [Entry(**row._mapping) for row in rows]


async def entries_of(conn: AsyncConnection, customer_id: str) -> list[Entry]:
    """The customer's entries, the latest first."""
    rows = await conn.execute(OF_CUSTOMER, {"customer": customer_id})
    return [Entry(**row._mapping) for row in rows]


async def tally(conn: AsyncConnection, session_id: str) -> list[tuple[str, str, int, int]]:
    """(category, state, entries, places) of the session's list, by category and state."""
    rows = await conn.execute(TALLY, {"session": session_id})
    return [(row.category, row.state, int(row.entries), int(row.places)) for row in rows]


async def entry_by_id(conn: AsyncConnection, entry_id: str) -> Entry | None:
    return await WaitlistRepository(conn).get(entry_id)


async def ahead_of(conn: AsyncConnection, entry: Entry) -> int:
    """Entries of the session still waiting that joined before `entry`."""
    return int(
        await conn.scalar(AHEAD, {"session": entry.session_id, "position": entry.position}) or 0
    )


async def offered_places(conn: AsyncConnection, entry_id: str) -> list[tuple[str, str, int]]:
    """(kind, place id, quantity) of what the entry's open offer holds."""
    rows = await conn.execute(OFFER_PLACES, {"holder": entry_id, "held": HELD})
    return [(row.kind, row.place_id, int(row.quantity)) for row in rows]


ENTRY_COLUMNS = list(waitlist.c)
TALLY = (
    select(
        waitlist.c.category,
        waitlist.c.state,
        func.count().label("entries"),
        func.sum(waitlist.c.quantity).label("places"),
    )
    .where(waitlist.c.session_id == bindparam("session"))
    .group_by(waitlist.c.category, waitlist.c.state)
    .order_by(waitlist.c.category, waitlist.c.state)
)
ENTRY = select(*ENTRY_COLUMNS).where(waitlist.c.entry_id == bindparam("entry"))
ACTIVE = select(*ENTRY_COLUMNS).where(
    waitlist.c.session_id == bindparam("session"),
    waitlist.c.customer_id == bindparam("customer"),
    waitlist.c.state.in_([WAITING, OFFERED]),
)
LAST_POSITION = select(func.max(waitlist.c.position)).where(
    waitlist.c.session_id == bindparam("session")
)
QUEUE = (
    select(*ENTRY_COLUMNS)
    .where(waitlist.c.session_id == bindparam("session"), waitlist.c.state == WAITING)
    .order_by(waitlist.c.position)
)
LAPSED = (
    select(*ENTRY_COLUMNS)
    .where(waitlist.c.state == OFFERED, waitlist.c.offer_expires_at <= bindparam("now"))
    .order_by(waitlist.c.offer_expires_at)
    .limit(bindparam("limit"))
)
OF_CUSTOMER = (
    select(*ENTRY_COLUMNS)
    .where(waitlist.c.customer_id == bindparam("customer"))
    .order_by(waitlist.c.joined_at.desc(), waitlist.c.position.desc())
    .limit(100)
)
AHEAD = (
    select(func.count())
    .select_from(waitlist)
    .where(
        waitlist.c.session_id == bindparam("session"),
        waitlist.c.state == WAITING,
        waitlist.c.position < bindparam("position"),
    )
)
OFFER_PLACES = (
    select(place_holds.c.kind, place_holds.c.place_id, place_holds.c.quantity)
    .where(place_holds.c.order_id == bindparam("holder"), place_holds.c.state == bindparam("held"))
    .order_by(place_holds.c.place_id)
)
