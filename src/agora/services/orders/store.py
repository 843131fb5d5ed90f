"""Orders' tables and the queries its routes read: orders with their lines of goods and of
tickets (and the places held for them), idempotency keys, the price list learned from catalog
events and the sessions on sale learned from ticketing's. Handlers write through
`repository`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from agora.messaging import DecimalText, UtcDateTime
from agora.services.orders.domain import Line, Order, OrderStatus, Place, TicketLine

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", String, nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", DecimalText, nullable=False),
    Column("payment_token", String, nullable=True),
    Column("payment_requested", Boolean, nullable=False, default=False),
    Column("cancel_reason", String, nullable=True),
    Column("hold_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("product_id", String, nullable=False, index=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", DecimalText, nullable=False),
    PrimaryKeyConstraint("order_id", "line_no"),
)

order_tickets = Table(
    "order_tickets",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("session_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", DecimalText, nullable=False),
    Column("seat_ids", Text, nullable=False),  # a JSON list, empty for best available
    Column("customer_id", String, nullable=False),  # for the cap per buyer and session
    Column("waitlist_id", String(36), nullable=True),  # the waiting-list offer it takes
    PrimaryKeyConstraint("order_id", "line_no"),
)

# Waiting-list offers open to their buyers (from inventory's WaitlistOffered, until it lapses).
waitlist_offers = Table(
    "waitlist_offers",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("session_id", String, nullable=False),
    Column("customer_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)
Index("ix_order_tickets_buyer", order_tickets.c.customer_id, order_tickets.c.session_id)

# The places inventory held for the order's tickets (from StockReserved).
order_places = Table(
    "order_places",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("place_no", Integer, nullable=False),
    Column("session_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("seat_id", String, nullable=True),
    Column("area_id", String, nullable=True),
    PrimaryKeyConstraint("order_id", "place_no"),
)

# -- sessions on sale (a read model of ticketing's events) -------------------------------------

sessions_on_sale = Table(
    "sessions_on_sale",
    metadata,
    Column("session_id", String, primary_key=True),
    Column("event_id", String, nullable=False),
    Column("seller_id", String, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("opens_at", UtcDateTime, nullable=True),
    Column("closes_at", UtcDateTime, nullable=True),
    Column("max_per_order", Integer, nullable=False),
    Column("max_per_buyer", Integer, nullable=False),
    Column("store_id", String, nullable=True),  # None: scheduled before orders kept it
)

ticket_prices = Table(
    "ticket_prices",
    metadata,
    Column("event_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("general_admission", Boolean, nullable=False),
    PrimaryKeyConstraint("event_id", "category"),
)

# What inventory last announced free per category (PlacesAvailable); no row: not sold out.
ticket_availability = Table(
    "ticket_availability",
    metadata,
    Column("session_id", String, nullable=False),
    Column("category", String, nullable=False),
    Column("available", Integer, nullable=False),
    PrimaryKeyConstraint("session_id", "category"),
)

seat_categories = Table(
    "seat_categories",
    metadata,
    Column("event_id", String, nullable=False),
    Column("seat_id", String, nullable=False),
    Column("category", String, nullable=False),
    PrimaryKeyConstraint("event_id", "seat_id"),
)

# A key is the caller's own: another customer's same key is another key (and learns nothing).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("order_id", String(36), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("customer_id", String, nullable=False),
    PrimaryKeyConstraint("customer_id", "key", name="idempotency_keys_pkey"),
)

prices = Table(
    "prices",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("price", DecimalText, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("seller_id", String, nullable=True, index=True),
    Column("listed", Boolean, nullable=False, default=True),
    # what inventory last announced (AvailabilityChanged); None until it has
    Column("available", Integer, nullable=True),
    Column("store_id", String, nullable=True),  # None: listed before orders kept it
)


async def order_ids(
    conn: AsyncConnection,
    condition: ColumnElement[bool] | None,
    status: OrderStatus | None,
    *,
    limit: int,
    offset: int,
) -> list[str]:
    """Ids of the orders meeting `condition` (and of `status`), newest first."""
    query = select(orders.c.id)
    if condition is not None:
        query = query.where(condition)
    if status is not None:
        query = query.where(orders.c.status == status.value)
    query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    return list((await conn.scalars(query.offset(offset))).all())


# Orders with their lines in one statement, built once (a line never changes once written, in
# the order's own transaction: any order read has all its lines).
LOAD_ORDERS = (
    select(
        orders,
        order_lines.c.product_id,
        order_lines.c.quantity,
        order_lines.c.unit_price,
    )
    .outerjoin(order_lines, order_lines.c.order_id == orders.c.id)
    .where(orders.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(orders.c.id, order_lines.c.line_no)
)


LOAD_TICKETS = (
    select(order_tickets)
    .where(order_tickets.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_tickets.c.order_id, order_tickets.c.line_no)
)
LOAD_PLACES = (
    select(order_places)
    .where(order_places.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_places.c.order_id, order_places.c.place_no)
)


async def load_orders(conn: AsyncConnection, order_ids: Sequence[str]) -> list[Order]:
    rows = (await conn.execute(LOAD_ORDERS, {"ids": list(order_ids)})).all()
    lines: dict[str, list[Line]] = {}
    heads: dict[str, Row[Any]] = {}  # first row of each order, in id order
    for row in rows:
        heads.setdefault(row.id, row)
        if row.product_id is not None:
            lines.setdefault(row.id, []).append(Line(row.product_id, row.quantity, row.unit_price))
    ids = list(heads)
    tickets: dict[str, list[TicketLine]] = {}
    places: dict[str, list[Place]] = {}
    if ids:
        for ticket in await conn.execute(LOAD_TICKETS, {"ids": ids}):
            tickets.setdefault(ticket.order_id, []).append(
                TicketLine(
                    session_id=ticket.session_id,
                    category=ticket.category,
                    quantity=ticket.quantity,
                    unit_price=ticket.unit_price,
                    seat_ids=tuple(orjson.loads(ticket.seat_ids)),
                    waitlist_id=ticket.waitlist_id,
                )
            )
        for place in await conn.execute(LOAD_PLACES, {"ids": ids}):
            places.setdefault(place.order_id, []).append(
                Place(place.session_id, place.category, place.seat_id, place.area_id)
            )
    return [
        Order(
            id=row.id,
            customer_id=row.customer_id,
            lines=tuple(lines.get(row.id, ())),
            tickets=tuple(tickets.get(row.id, ())),
            places=tuple(places.get(row.id, ())),
            currency=row.currency,
            status=OrderStatus(row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
            payment_token=row.payment_token,
            payment_requested=row.payment_requested,
            cancel_reason=row.cancel_reason,
            hold_expires_at=row.hold_expires_at,
        )
        for row in heads.values()
    ]


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status))
    return dict(rows.all())


async def sold_by(conn: AsyncConnection, seller_id: str, product_ids: Iterable[str]) -> bool:
    """Whether `seller_id` sells any of `product_ids`."""
    found = await conn.scalar(
        select(func.count())
        .select_from(prices)
        .where(prices.c.seller_id == seller_id, prices.c.product_id.in_(list(product_ids)))
    )
    return bool(found)


def visible_to(role: str, user_id: str) -> ColumnElement[bool] | None:
    """Which orders a caller may read: a buyer its own, a seller those with a line of its
    products, an admin all (None: no condition)."""
    if role == "admin":
        return None
    if role == "seller":
        return orders.c.id.in_(
            select(order_lines.c.order_id)
            .join(prices, prices.c.product_id == order_lines.c.product_id)
            .where(prices.c.seller_id == user_id)
        )
    return orders.c.customer_id == user_id
