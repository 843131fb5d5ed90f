"""How ticketing's handlers change its rows: the repository of one unit of work."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork, insert_new
from agora.services.ticketing import store
from agora.services.ticketing.store import (
    Event,
    Session,
    Venue,
    events,
    price_categories,
    sessions,
    stores,
    venues,
)

__all__ = ["TicketingRepository", "TicketingUnitOfWork"]


class TicketingRepository:
    """Stores, venues, events and sessions as ticketing's handlers change them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_store(self, store_id: str, seller_id: str | None, name: str) -> None:
        await self._conn.execute(
            insert_new(stores, self._conn.dialect.name),
            {"store_id": store_id, "seller_id": seller_id, "name": name},
        )

    async def store_owner(self, store_id: str) -> tuple[bool, str | None]:
        return await store.store_owner(self._conn, store_id)

    async def add_venue(self, venue: Venue) -> None:
        await self._conn.execute(
            insert(venues).values(
                id=venue.id,
                store_id=venue.store_id,
                seller_id=venue.seller_id,
                name=venue.name,
                plan=venue.plan_json,
                seats=venue.seats,
                capacity=venue.capacity,
                created_at=venue.created_at,
            )
        )

    async def venue(self, venue_id: str) -> Venue | None:
        return await store.venue_by_id(self._conn, venue_id)

    async def add_event(self, event: Event) -> None:
        starts = [session.starts_at for session in event.sessions]
        await self._conn.execute(
            insert(events).values(
                id=event.id,
                store_id=event.store_id,
                seller_id=event.seller_id,
                venue_id=event.venue_id,
                title=event.title,
                description=event.description,
                currency=event.currency,
                hold_seconds=event.hold_seconds,
                max_per_order=event.max_per_order,
                max_per_buyer=event.max_per_buyer,
                cancel_until_hours=event.cancel_until_hours,
                first_start=min(starts),
                last_start=max(starts),
                created_at=event.created_at,
            )
        )
        await self._conn.execute(
            insert(price_categories),
            [
                {"event_id": event.id, "name": name, "price": price, "position": position}
                for position, (name, price) in enumerate(event.categories)
            ],
        )
        await self._conn.execute(
            insert(sessions),
            [
                {
                    "id": session.id,
                    "event_id": event.id,
                    "starts_at": session.starts_at,
                    "opens_at": session.opens_at,
                    "closes_at": session.closes_at,
                }
                for session in event.sessions
            ],
        )

    async def event(self, event_id: str) -> Event | None:
        return await store.event_by_id(self._conn, event_id)

    async def session(self, session_id: str) -> Session | None:
        return await store.session_by_id(self._conn, session_id)

    async def set_sales(
        self, session_id: str, opens_at: dt.datetime | None, closes_at: dt.datetime | None
    ) -> None:
        await self._conn.execute(
            SET_SALES, {"session": session_id, "opens": opens_at, "closes": closes_at}
        )


class TicketingUnitOfWork(UnitOfWork):
    @property
    def ticketing(self) -> TicketingRepository:
        return TicketingRepository(self.conn)


SET_SALES = (
    update(sessions)
    .where(sessions.c.id == bindparam("session"))
    .values(opens_at=bindparam("opens"), closes_at=bindparam("closes"))
)
