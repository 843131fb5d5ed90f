"""Inventory's tables: stock levels per product, each session's seats and general-admission
places, and the holds of both for orders."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts.ticketing import SalesWindow
from agora.messaging import UtcDateTime
from agora.services.inventory.domain import AreaPlaces, SeatMap, StockLevel

metadata = MetaData()

stock = Table(
    "stock",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, default=0),
    Column("sold", Integer, nullable=False, default=0),
    Column("seller_id", String, nullable=True),
    # The units the product was stocked with: available + reserved + sold, always.
    Column("stocked", Integer, nullable=False, server_default="0"),
    CheckConstraint("available >= 0", name="available_not_negative"),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
)

HELD, SOLD, RELEASED = "HELD", "SOLD", "RELEASED"

holds = Table(
    "holds",
    metadata,
    Column("order_id", String(36), nullable=False),
    Column("product_id", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", String(8), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("expiry_announced", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("order_id", "product_id"),
)

# The sweeper's query: held, not yet announced, by expiry.
Index(
    "ix_holds_due",
    holds.c.expires_at,
    sqlite_where=(holds.c.state == HELD) & ~holds.c.expiry_announced,
    postgresql_where=(holds.c.state == HELD) & ~holds.c.expiry_announced,
)

# -- sessions of events: seats, general-admission areas, and their holds ----------------------

ticket_sessions = Table(
    "ticket_sessions",
    metadata,
    Column("session_id", String, primary_key=True),
    Column("event_id", String, nullable=False),
    Column("seller_id", String, nullable=True),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("hold_seconds", Integer, nullable=False),
    Column("max_per_order", Integer, nullable=False, server_default="10"),
    Column("waitlist_offer_seconds", Integer, nullable=False, server_default="3600"),
    Column("opens_at", UtcDateTime, nullable=True),
    Column("closes_at", UtcDateTime, nullable=True),
    # Grows by one with every change of a seat's or an area's state (`place_changes`): the seat
    # map's version.
    Column("version", Integer, nullable=False, default=0),
)

# The plan as the organizer drew it (JSON), once per event: the seat map is drawn from it.
ticket_plans = Table(
    "ticket_plans",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("plan", Text, nullable=False),
)

FREE = "FREE"

seats = Table(
    "seats",
    metadata,
    Column("session_id", String, nullable=False),
    Column("seat_id", String, nullable=False),
    Column("row_key", String, nullable=False),
    Column("position", Integer, nullable=False),
    Column("category", String, nullable=False),
    Column("state", String(8), nullable=False),  # FREE, HELD or SOLD
    Column("order_id", String(36), nullable=True),
    PrimaryKeyConstraint("session_id", "seat_id"),
)
Index("ix_seats_row", seats.c.session_id, seats.c.row_key, seats.c.position)

# Free seats per row and category: best-available reads the rows that can still seat a party
# instead of every seat of the session.
seat_rows = Table(
    "seat_rows",
    metadata,
    Column("session_id", String, nullable=False),
    Column("row_key", String, nullable=False),
    Column("category", String, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("free", Integer, nullable=False),
    PrimaryKeyConstraint("session_id", "row_key", "category"),
    CheckConstraint("free >= 0", name="free_not_negative"),
)
Index("ix_seat_rows_rank", seat_rows.c.session_id, seat_rows.c.category, seat_rows.c.rank)

areas = Table(
    "areas",
    metadata,
    Column("session_id", String, nullable=False),
    Column("area_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("available", Integer, nullable=False),
    PrimaryKeyConstraint("session_id", "area_id"),
    CheckConstraint("available >= 0", name="area_available_not_negative"),
)

SEAT, AREA, SALE = "seat", "area", "sale"

place_holds = Table(
    "place_holds",
    metadata,
    Column("order_id", String(36), nullable=False),
    Column("session_id", String, nullable=False),
    Column("place_id", String, nullable=False),  # a seat id, or an area id
    Column("kind", String(4), nullable=False),  # SEAT or AREA
    Column("category", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", String(8), nullable=False),  # HELD, SOLD or RELEASED
    Column("expires_at", UtcDateTime, nullable=False),
    Column("expiry_announced", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("order_id", "session_id", "place_id"),
)
Index(
    "ix_place_holds_due",
    place_holds.c.expires_at,
    sqlite_where=(place_holds.c.state == HELD) & ~place_holds.c.expiry_announced,
    postgresql_where=(place_holds.c.state == HELD) & ~place_holds.c.expiry_announced,
)

# Every change of a session's places, in version order: what its seat map's streams send
# (`feed`). A seat's row has its new `state`; an area's, its free places (`available`).
place_changes = Table(
    "place_changes",
    metadata,
    Column("session_id", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("place_id", String, nullable=False),
    Column("kind", String(4), nullable=False),  # SEAT, AREA, or SALE (the sales window)
    Column("state", String(8), nullable=True),
    Column("available", Integer, nullable=True),
    Column("committed_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("session_id", "version"),
)

# -- waiting lists of sold-out sessions ---------------------------------------------------------

WAITING, OFFERED, TAKEN, LAPSED, LEFT = "WAITING", "OFFERED", "TAKEN", "LAPSED", "LEFT"

waitlist = Table(
    "waitlist",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("session_id", String, nullable=False),
    Column("customer_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", String(8), nullable=False),  # WAITING, OFFERED, TAKEN, LAPSED or LEFT
    Column("joined_at", UtcDateTime, nullable=False),
    # Ties of `joined_at` break by this number, which grows with each entry of the session.
    Column("position", Integer, nullable=False),
    Column("offered_at", UtcDateTime, nullable=True),
    # The offer's places are held in `place_holds` under the entry's id until this time.
    Column("offer_expires_at", UtcDateTime, nullable=True),
    Column("order_id", String(36), nullable=True),  # the order that took the offer
    Column("ended_at", UtcDateTime, nullable=True),
)
Index("ix_waitlist_queue", waitlist.c.session_id, waitlist.c.state, waitlist.c.position)
Index("ix_waitlist_customer", waitlist.c.customer_id, waitlist.c.joined_at)
Index(
    "ix_waitlist_offers_due",
    waitlist.c.offer_expires_at,
    sqlite_where=waitlist.c.state == OFFERED,
    postgresql_where=waitlist.c.state == OFFERED,
)
# One entry per buyer and session on the list at a time.
Index(
    "ux_waitlist_active",
    waitlist.c.session_id,
    waitlist.c.customer_id,
    unique=True,
    sqlite_where=waitlist.c.state.in_([WAITING, OFFERED]),
    postgresql_where=waitlist.c.state.in_([WAITING, OFFERED]),
)


async def stock_level(conn: AsyncConnection, product_id: str) -> StockLevel | None:
    row = (await conn.execute(STOCK_OF, {"product": product_id})).first()
    if row is None:
        return None
    return StockLevel(
        product_id=row.product_id,
        seller_id=row.seller_id,
        available=row.available,
        reserved=row.reserved,
        sold=row.sold,
    )


STOCK_OF = select(stock).where(stock.c.product_id == bindparam("product"))


async def next_expiry(conn: AsyncConnection) -> dt.datetime | None:
    """When the first hold not yet announced (of stock or of places), or the first open offer
    of a waiting list, runs out."""
    upcoming = []
    for table in (holds, place_holds):
        value: dt.datetime | None = await conn.scalar(
            select(table.c.expires_at)
            .where(table.c.state == HELD, ~table.c.expiry_announced)
            .order_by(table.c.expires_at)
            .limit(1)
        )
        if value is not None:
            upcoming.append(value)
    offer: dt.datetime | None = await conn.scalar(
        select(waitlist.c.offer_expires_at)
        .where(waitlist.c.state == OFFERED)
        .order_by(waitlist.c.offer_expires_at)
        .limit(1)
    )
    if offer is not None:
        upcoming.append(offer)
    return min(upcoming, default=None)


async def seat_map(conn: AsyncConnection, session_id: str) -> SeatMap | None:
    """The session's map. The version is read first: on PostgreSQL each read is a statement of
    its own, so the states may be newer than the version, never older (a client that applies
    the changes after `version` to them ends up right)."""
    session = (await conn.execute(SESSION_OF, {"session": session_id})).first()
    if session is None:
        return None
    plan = await conn.scalar(PLAN_OF, {"event": session.event_id})
    states = await conn.execute(SEAT_STATES, {"session": session_id})
    places = await conn.execute(AREAS_OF_SESSION, {"session": session_id})
    return SeatMap(
        session_id=session_id,
        event_id=session.event_id,
        version=session.version,
        window=SalesWindow(
            starts_at=session.starts_at, opens_at=session.opens_at, closes_at=session.closes_at
        ),
        plan_json=str(plan),
        seats={row.seat_id: row.state for row in states},
        areas={
            row.area_id: AreaPlaces(capacity=row.capacity, available=row.available)
            for row in places
        },
    )


async def session_seller(conn: AsyncConnection, session_id: str) -> tuple[str | None] | None:
    """(the seller,) of the session, or None if there is no such session."""
    row = (await conn.execute(SESSION_OF, {"session": session_id})).first()
    return None if row is None else (row.seller_id,)


SESSION_OF = select(ticket_sessions).where(ticket_sessions.c.session_id == bindparam("session"))
PLAN_OF = select(ticket_plans.c.plan).where(ticket_plans.c.event_id == bindparam("event"))
SEAT_STATES = select(seats.c.seat_id, seats.c.state).where(
    seats.c.session_id == bindparam("session")
)
AREAS_OF_SESSION = select(areas.c.area_id, areas.c.capacity, areas.c.available).where(
    areas.c.session_id == bindparam("session")
)
