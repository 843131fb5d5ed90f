"""How ticketing's handlers change its rows: the repository of one unit of work."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth.keys import SigningKey
from agora.messaging import UnitOfWork, insert_new
from agora.services.ticketing import store
from agora.services.ticketing.store import (
    CANCELLED,
    VALID,
    Event,
    Session,
    Ticket,
    Venue,
    attendees,
    events,
    price_categories,
    sessions,
    stores,
    ticket_keys,
    tickets,
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
                waitlist_offer_seconds=event.waitlist_offer_seconds,
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
                    "cancelled_at": None,
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

    async def signing_keys(self) -> list[SigningKey]:
        """Every key that signs ticket codes, oldest first (the last one signs new codes)."""
        return await store.signing_keys(self._conn)

    async def add_signing_key(self, key: SigningKey, now: dt.datetime) -> None:
        await self._conn.execute(
            insert_new(ticket_keys, self._conn.dialect.name),
            {"kid": key.kid, "private_pem": key.private_pem, "created_at": now},
        )

    async def add_ticket(self, ticket: Ticket, place_no: int) -> bool:
        """Record the ticket of the order's `place_no`-th place; False (nothing written) if that
        place has its ticket already."""
        values = {
            "id": ticket.id,
            "order_id": ticket.order_id,
            "place_no": place_no,
            "customer_id": ticket.customer_id,
            "event_id": ticket.event_id,
            "session_id": ticket.session_id,
            "category": ticket.category,
            "seat_id": ticket.seat_id,
            "area_id": ticket.area_id,
            "price": ticket.price,
            "currency": ticket.currency,
            "attendee": ticket.attendee,
            "code": ticket.code,
            "state": ticket.state,
            "issued_at": ticket.issued_at,
            "checked_in_at": None,
            "checked_in_gate": None,
        }
        result = await self._conn.execute(
            insert_new(tickets, self._conn.dialect.name, tickets.c.id), values
        )
        return result.first() is not None

    async def set_attendee(self, customer_id: str, name: str | None) -> None:
        await self._conn.execute(delete(attendees).where(attendees.c.customer_id == customer_id))
        await self._conn.execute(insert(attendees).values(customer_id=customer_id, name=name))

    async def attendee(self, customer_id: str) -> str | None:
        name: str | None = await self._conn.scalar(
            select(attendees.c.name).where(attendees.c.customer_id == customer_id)
        )
        return name

    async def ticket(self, ticket_id: str) -> Ticket | None:
        return await store.ticket_by_id(self._conn, ticket_id)

    async def check_in(self, ticket_id: str, at: dt.datetime, gate: str | None) -> bool:
        """Mark a valid ticket used, once: False if it was used (or cancelled) before. One
        conditional update, so two scanners reading one code at once admit it once."""
        result = await self._conn.execute(
            CHECK_IN, {"ticket": ticket_id, "at": at, "gate": gate, "valid": VALID}
        )
        return result.rowcount == 1

    async def cancel_ticket(self, ticket_id: str) -> bool:
        """A valid ticket not used yet becomes CANCELLED; False if it was not."""
        result = await self._conn.execute(
            update(tickets)
            .where(
                tickets.c.id == ticket_id,
                tickets.c.state == VALID,
                tickets.c.checked_in_at.is_(None),
            )
            .values(state=CANCELLED)
        )
        return result.rowcount == 1

    async def valid_tickets(self, session_id: str) -> list[Ticket]:
        return await store.valid_tickets_of(self._conn, session_id)

    async def cancel_session(self, session_id: str, at: dt.datetime) -> None:
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(cancelled_at=at, closes_at=at)
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
CHECK_IN = (
    update(tickets)
    .where(
        tickets.c.id == bindparam("ticket"),
        tickets.c.state == bindparam("valid"),
        tickets.c.checked_in_at.is_(None),
    )
    .values(checked_in_at=bindparam("at"), checked_in_gate=bindparam("gate"))
)
