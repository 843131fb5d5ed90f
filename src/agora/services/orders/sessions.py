"""What orders knows of the sessions on sale, from ticketing's events: prices per category,
which category each seat is in, sales windows and the caps per order and per buyer; and, from
inventory's, the waiting-list offers open to their buyers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts.inventory import WaitlistOffered
from agora.contracts.ticketing import EventScheduled, SalesWindow
from agora.services.orders.domain import OrderStatus, Seller
from agora.services.orders.store import (
    order_tickets,
    orders,
    seat_categories,
    sessions_on_sale,
    ticket_availability,
    ticket_prices,
    waitlist_offers,
)

__all__ = ["OpenOffer", "SessionOnSale", "SessionsOnSale"]


@dataclasses.dataclass(frozen=True, slots=True)
class OpenOffer:
    entry_id: str
    session_id: str
    customer_id: str
    category: str
    quantity: int
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class SessionOnSale:
    session_id: str
    event_id: str
    currency: str
    starts_at: dt.datetime
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None
    max_per_order: int
    max_per_buyer: int
    # category → (price, general admission)
    categories: dict[str, tuple[Decimal, bool]]

    @property
    def window(self) -> SalesWindow:
        return SalesWindow(self.starts_at, self.opens_at, self.closes_at)


class SessionsOnSale:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def schedule(self, event: EventScheduled) -> None:
        """Learn the event's sessions, prices and seats (nothing if it is known already)."""
        if await self._conn.scalar(EVENT_KNOWN, {"event": event.event_id}):
            return
        general = {area.category for area in event.plan.areas}
        await self._conn.execute(
            insert(ticket_prices),
            [
                {
                    "event_id": event.event_id,
                    "category": category.name,
                    "price": category.price,
                    "general_admission": category.name in general,
                }
                for category in event.categories
            ],
        )
        await self._conn.execute(
            insert(sessions_on_sale),
            [
                {
                    "session_id": session.session_id,
                    "event_id": event.event_id,
                    "seller_id": event.seller_id,
                    "store_id": event.store_id,
                    "currency": event.currency,
                    "starts_at": session.starts_at,
                    "opens_at": None,
                    "closes_at": None,
                    "max_per_order": event.max_per_order,
                    "max_per_buyer": event.max_per_buyer,
                }
                for session in event.sessions
            ],
        )
        seats = [
            {"event_id": event.event_id, "seat_id": seat.id, "category": seat.category}
            for _, _, seat in event.plan.seats()
        ]
        if seats:
            await self._conn.execute(insert(seat_categories), seats)

    async def open_sales(self, session_id: str, opens_at: dt.datetime) -> None:
        await self._conn.execute(
            SET_WINDOW, {"session": session_id, "opens_at": opens_at, "closes_at": None}
        )

    async def close_sales(self, session_id: str, closes_at: dt.datetime) -> None:
        await self._conn.execute(CLOSE, {"session": session_id, "closes_at": closes_at})

    async def find(self, session_ids: Iterable[str]) -> dict[str, SessionOnSale]:
        ids = sorted(set(session_ids))
        rows = (await self._conn.execute(SESSIONS, {"sessions": ids})).all()
        events = sorted({row.event_id for row in rows})
        categories: dict[str, dict[str, tuple[Decimal, bool]]] = {}
        for price in await self._conn.execute(PRICES, {"events": events}):
            categories.setdefault(price.event_id, {})[price.category] = (
                price.price,
                price.general_admission,
            )
        return {
            row.session_id: SessionOnSale(
                session_id=row.session_id,
                event_id=row.event_id,
                currency=row.currency,
                starts_at=row.starts_at,
                opens_at=row.opens_at,
                closes_at=row.closes_at,
                max_per_order=row.max_per_order,
                max_per_buyer=row.max_per_buyer,
                categories=categories.get(row.event_id, {}),
            )
            for row in rows
        }

    async def sellers(self, session_ids: Iterable[str]) -> dict[str, Seller]:
        """The store and seller of those of `session_ids` that are known."""
        rows = await self._conn.execute(SELLERS_OF_SESSIONS, {"sessions": list(session_ids)})
        return {row.session_id: Seller(row.store_id, row.seller_id) for row in rows}

    async def set_available(self, session_id: str, category: str, available: int) -> None:
        """What inventory last announced free of the category."""
        where = (
            ticket_availability.c.session_id == session_id,
            ticket_availability.c.category == category,
        )
        await self._conn.execute(delete(ticket_availability).where(*where))
        await self._conn.execute(
            insert(ticket_availability).values(
                session_id=session_id, category=category, available=available
            )
        )

    async def sold_out(self, session_id: str) -> set[str]:
        """The categories of the session inventory last announced as having none free."""
        rows = await self._conn.execute(
            select(ticket_availability.c.category).where(
                ticket_availability.c.session_id == session_id,
                ticket_availability.c.available == 0,
            )
        )
        return set(rows.scalars())

    async def seat_categories(self, event_id: str, seat_ids: Iterable[str]) -> dict[str, str]:
        """The category of each of `seat_ids` the event's plan has."""
        rows = await self._conn.execute(
            SEAT_CATEGORIES, {"event": event_id, "seats": sorted(set(seat_ids))}
        )
        return {row.seat_id: row.category for row in rows}

    async def offered(self, event: WaitlistOffered) -> None:
        """The waiting list offers the entry's buyer its places (once per entry)."""
        if await self._conn.scalar(OFFER_KNOWN, {"entry": event.entry_id}):
            return
        await self._conn.execute(
            insert(waitlist_offers).values(
                entry_id=event.entry_id,
                session_id=event.session_id,
                customer_id=event.customer_id,
                category=event.category,
                quantity=event.quantity,
                expires_at=event.expires_at,
            )
        )

    async def offer_lapsed(self, entry_id: str) -> None:
        await self._conn.execute(
            delete(waitlist_offers).where(waitlist_offers.c.entry_id == entry_id)
        )

    async def offer(self, entry_id: str) -> OpenOffer | None:
        row = (await self._conn.execute(OFFER, {"entry": entry_id})).first()
        return None if row is None else OpenOffer(**row._mapping)

    async def held_by(self, customer_id: str, session_ids: Iterable[str]) -> dict[str, int]:
        """Tickets the customer has in each session, in orders not cancelled or expired."""
        rows = await self._conn.execute(
            HELD_BY, {"customer": customer_id, "sessions": sorted(set(session_ids))}
        )
        return {row.session_id: int(row.tickets) for row in rows}


OFFER_KNOWN = (
    select(func.count())
    .select_from(waitlist_offers)
    .where(waitlist_offers.c.entry_id == bindparam("entry"))
)
OFFER = select(waitlist_offers).where(waitlist_offers.c.entry_id == bindparam("entry"))
EVENT_KNOWN = (
    select(func.count())
    .select_from(ticket_prices)
    .where(ticket_prices.c.event_id == bindparam("event"))
)
SET_WINDOW = (
    update(sessions_on_sale)
    .where(sessions_on_sale.c.session_id == bindparam("session"))
    .values(opens_at=bindparam("opens_at"), closes_at=bindparam("closes_at"))
)
CLOSE = (
    update(sessions_on_sale)
    .where(sessions_on_sale.c.session_id == bindparam("session"))
    .values(closes_at=bindparam("closes_at"))
)
SELLERS_OF_SESSIONS = select(
    sessions_on_sale.c.session_id, sessions_on_sale.c.store_id, sessions_on_sale.c.seller_id
).where(sessions_on_sale.c.session_id.in_(bindparam("sessions", expanding=True)))
SESSIONS = select(sessions_on_sale).where(
    sessions_on_sale.c.session_id.in_(bindparam("sessions", expanding=True))
)
PRICES = select(ticket_prices).where(
    ticket_prices.c.event_id.in_(bindparam("events", expanding=True))
)
SEAT_CATEGORIES = select(seat_categories.c.seat_id, seat_categories.c.category).where(
    seat_categories.c.event_id == bindparam("event"),
    seat_categories.c.seat_id.in_(bindparam("seats", expanding=True)),
)
HELD_BY = (
    select(order_tickets.c.session_id, func.sum(order_tickets.c.quantity).label("tickets"))
    .join(orders, orders.c.id == order_tickets.c.order_id)
    .where(
        order_tickets.c.customer_id == bindparam("customer"),
        order_tickets.c.session_id.in_(bindparam("sessions", expanding=True)),
        orders.c.status.not_in([OrderStatus.CANCELLED.value, OrderStatus.EXPIRED.value]),
    )
    .group_by(order_tickets.c.session_id)
)
