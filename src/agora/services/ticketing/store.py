"""Ticketing's tables and read queries: the stores it sells in (a read model of catalog's
events), venues with their plans, events with price categories and sessions, the tickets issued
for paid places with their check-ins, and the keys that sign ticket codes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth.keys import SigningKey
from agora.contracts.ticketing import SalesWindow
from agora.messaging import UtcDateTime
from agora.messaging.sql import DecimalText

metadata = MetaData()

stores = Table(
    "stores",
    metadata,
    Column("store_id", String, primary_key=True),
    Column("seller_id", String, nullable=True),
    Column("name", String, nullable=False),
)

venues = Table(
    "venues",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("store_id", String, nullable=False),
    Column("seller_id", String, nullable=True),
    Column("name", String, nullable=False),
    Column("plan", Text, nullable=False),
    Column("seats", Integer, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("store_id", String, nullable=False),
    Column("seller_id", String, nullable=True),
    Column("venue_id", String(36), ForeignKey("venues.id"), nullable=False),
    Column("title", String, nullable=False),
    Column("description", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("hold_seconds", Integer, nullable=False),
    Column("max_per_order", Integer, nullable=False),
    Column("max_per_buyer", Integer, nullable=False),
    Column("cancel_until_hours", Integer, nullable=False),
    Column("waitlist_offer_seconds", Integer, nullable=False, server_default="3600"),
    Column("first_start", UtcDateTime, nullable=False),
    Column("last_start", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_events_last_start", events.c.last_start)

price_categories = Table(
    "price_categories",
    metadata,
    Column("event_id", String(36), ForeignKey("events.id"), nullable=False),
    Column("name", String, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("event_id", "name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(36), ForeignKey("events.id"), nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("opens_at", UtcDateTime, nullable=True),
    Column("closes_at", UtcDateTime, nullable=True),
    Column("cancelled_at", UtcDateTime, nullable=True),
)
Index("ix_sessions_event", sessions.c.event_id, sessions.c.starts_at)

# The names buyers gave in their profiles (identity's UserProfileChanged), printed on tickets.
attendees = Table(
    "attendees",
    metadata,
    Column("customer_id", String, primary_key=True),
    Column("name", String(200), nullable=True),
)

ticket_keys = Table(
    "ticket_keys",
    metadata,
    Column("kid", String, primary_key=True),
    Column("private_pem", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

VALID, CANCELLED = "VALID", "CANCELLED"

tickets = Table(
    "tickets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("place_no", Integer, nullable=False),
    Column("customer_id", String, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("session_id", String(36), nullable=False),
    Column("category", String, nullable=False),
    Column("seat_id", String, nullable=True),
    Column("area_id", String, nullable=True),
    Column("price", DecimalText, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("attendee", String(200), nullable=True),
    Column("code", Text, nullable=False),
    Column("state", String(10), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("checked_in_at", UtcDateTime, nullable=True),
    Column("checked_in_gate", String, nullable=True),
    UniqueConstraint("order_id", "place_no", name="uq_tickets_place"),
)
Index("ix_tickets_customer", tickets.c.customer_id, tickets.c.issued_at)
Index("ix_tickets_session", tickets.c.session_id)


@dataclasses.dataclass(frozen=True, slots=True)
class Venue:
    id: str
    store_id: str
    seller_id: str | None
    name: str
    plan_json: str
    seats: int
    capacity: int
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    id: str
    event_id: str
    starts_at: dt.datetime
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None
    cancelled_at: dt.datetime | None = None

    def sales_open(self, now: dt.datetime) -> bool:
        # a cancelled session's sales closed when it was cancelled
        return SalesWindow(self.starts_at, self.opens_at, self.closes_at).is_open(now)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    id: str
    store_id: str
    seller_id: str | None
    venue_id: str
    title: str
    description: str
    currency: str
    hold_seconds: int
    max_per_order: int
    max_per_buyer: int
    cancel_until_hours: int
    waitlist_offer_seconds: int
    created_at: dt.datetime
    categories: tuple[tuple[str, Decimal], ...]
    sessions: tuple[Session, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    order_id: str
    customer_id: str
    event_id: str
    session_id: str
    category: str
    seat_id: str | None
    area_id: str | None
    price: Decimal
    currency: str
    attendee: str | None
    code: str
    state: str
    issued_at: dt.datetime
    checked_in_at: dt.datetime | None
    checked_in_gate: str | None


def _ticket(row: Any) -> Ticket:
    return Ticket(**{k: v for k, v in row._mapping.items() if k != "place_no"})


async def signing_keys(conn: AsyncConnection) -> list[SigningKey]:
    """Every key that signs ticket codes, oldest first (the last one signs new codes)."""
    rows = await conn.execute(SIGNING_KEYS)
    return [SigningKey(kid=row.kid, private_pem=row.private_pem) for row in rows]


async def ticket_by_id(conn: AsyncConnection, ticket_id: str) -> Ticket | None:
    row = (await conn.execute(TICKET, {"ticket": ticket_id})).first()
    return None if row is None else _ticket(row)


async def tickets_of(
    conn: AsyncConnection, customer_id: str, page: int, page_size: int
) -> tuple[list[Ticket], int]:
    """The customer's tickets, newest first."""
    total = int(
        await conn.scalar(
            select(func.count()).select_from(tickets).where(tickets.c.customer_id == customer_id)
        )
        or 0
    )
    rows = await conn.execute(
        select(tickets)
        .where(tickets.c.customer_id == customer_id)
        .order_by(tickets.c.issued_at.desc(), tickets.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return [_ticket(row) for row in rows], total


async def valid_tickets_of(conn: AsyncConnection, session_id: str) -> list[Ticket]:
    rows = await conn.execute(
        select(tickets)
        .where(tickets.c.session_id == session_id, tickets.c.state == VALID)
        .order_by(tickets.c.id)
    )
    return [_ticket(row) for row in rows]


async def checkin_counts(conn: AsyncConnection, session_id: str) -> tuple[int, int]:
    """(valid tickets, of which checked in) of the session."""
    row = (await conn.execute(CHECKIN_COUNTS, {"session": session_id})).one()
    return int(row.issued or 0), int(row.checked_in or 0)


async def checked_in(conn: AsyncConnection, session_id: str) -> list[Ticket]:
    """The session's valid tickets checked in, the latest first (at most 1,000)."""
    return [_ticket(row) for row in await conn.execute(CHECKED_IN, {"session": session_id})]


async def store_owner(conn: AsyncConnection, store_id: str) -> tuple[bool, str | None]:
    """(known, seller) of the store."""
    row = (await conn.execute(STORE_OWNER, {"store": store_id})).first()
    return (False, None) if row is None else (True, row.seller_id)


async def venue_by_id(conn: AsyncConnection, venue_id: str) -> Venue | None:
    row = (await conn.execute(VENUE, {"venue": venue_id})).first()
    if row is None:
        return None
    return Venue(
        id=row.id,
        store_id=row.store_id,
        seller_id=row.seller_id,
        name=row.name,
        plan_json=row.plan,
        seats=row.seats,
        capacity=row.capacity,
        created_at=row.created_at,
    )


async def event_by_id(conn: AsyncConnection, event_id: str) -> Event | None:
    found = await events_by_ids(conn, [event_id])
    return found[0] if found else None


async def events_by_ids(conn: AsyncConnection, event_ids: list[str]) -> list[Event]:
    """The events, in the order asked, with their categories and sessions."""
    if not event_ids:
        return []
    rows = {row.id: row for row in await conn.execute(EVENTS, {"events": event_ids})}
    categories: dict[str, list[tuple[str, Decimal]]] = {}
    for row in await conn.execute(CATEGORIES, {"events": event_ids}):
        categories.setdefault(row.event_id, []).append((row.name, row.price))
    sessions_of: dict[str, list[Session]] = {}
    for row in await conn.execute(SESSIONS, {"events": event_ids}):
        sessions_of.setdefault(row.event_id, []).append(Session(**row._mapping))
    return [
        Event(
            **{
                key: value
                for key, value in rows[event_id]._mapping.items()
                if key not in ("first_start", "last_start")
            },
            categories=tuple(categories.get(event_id, ())),
            sessions=tuple(sessions_of.get(event_id, ())),
        )
        for event_id in event_ids
        if event_id in rows
    ]


async def session_by_id(conn: AsyncConnection, session_id: str) -> Session | None:
    row = (await conn.execute(SESSION, {"session": session_id})).first()
    return None if row is None else Session(**row._mapping)


async def events_page(
    conn: AsyncConnection,
    *,
    query: str | None,
    store_id: str | None,
    upcoming_after: dt.datetime | None,
    page: int,
    page_size: int,
) -> tuple[list[Event], int]:
    """Events by their first session (soonest first): matching `query` in title or description,
    of `store_id`, with a session after `upcoming_after`."""
    conditions = []
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                events.c.title.ilike(pattern, escape="\\"),
                events.c.description.ilike(pattern, escape="\\"),
            )
        )
    if store_id is not None:
        conditions.append(events.c.store_id == store_id)
    if upcoming_after is not None:
        conditions.append(events.c.last_start > upcoming_after)
    total = int(await conn.scalar(select(func.count()).select_from(events).where(*conditions)) or 0)
    ids = list(
        (
            await conn.execute(
                select(events.c.id)
                .where(*conditions)
                .order_by(events.c.first_start, events.c.id)
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
        ).scalars()
    )
    return await events_by_ids(conn, ids), total


# Prepared statements (docs/architecture.md).
STORE_OWNER = select(stores.c.seller_id).where(stores.c.store_id == bindparam("store"))
VENUE = select(
    venues.c.id,
    venues.c.store_id,
    venues.c.seller_id,
    venues.c.name,
    venues.c.plan,
    venues.c.seats,
    venues.c.capacity,
    venues.c.created_at,
).where(venues.c.id == bindparam("venue"))
EVENTS = select(events).where(events.c.id.in_(bindparam("events", expanding=True)))
CATEGORIES = (
    select(price_categories.c.event_id, price_categories.c.name, price_categories.c.price)
    .where(price_categories.c.event_id.in_(bindparam("events", expanding=True)))
    .order_by(price_categories.c.event_id, price_categories.c.position)
)
SESSIONS = (
    select(sessions)
    .where(sessions.c.event_id.in_(bindparam("events", expanding=True)))
    .order_by(sessions.c.event_id, sessions.c.starts_at)
)
SESSION = select(sessions).where(sessions.c.id == bindparam("session"))
SIGNING_KEYS = select(ticket_keys.c.kid, ticket_keys.c.private_pem).order_by(
    ticket_keys.c.created_at, ticket_keys.c.kid
)
TICKET = select(tickets).where(tickets.c.id == bindparam("ticket"))
CHECKED_IN = (
    select(tickets)
    .where(
        tickets.c.session_id == bindparam("session"),
        tickets.c.state == VALID,
        tickets.c.checked_in_at.is_not(None),
    )
    .order_by(tickets.c.checked_in_at.desc(), tickets.c.id)
    .limit(1000)
)
CHECKIN_COUNTS = select(
    func.count().label("issued"), func.count(tickets.c.checked_in_at).label("checked_in")
).where(tickets.c.session_id == bindparam("session"), tickets.c.state == VALID)
