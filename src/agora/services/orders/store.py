"""Orders' tables and repository: orders with their lines, idempotency keys, and the price list
learned from catalog events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from agora.messaging import DecimalText, UnitOfWork, UtcDateTime
from agora.services.orders.domain import Line, Order, OrderStatus

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
)


ORDER_CHANGES = "agora_orders_changed"
"""The PostgreSQL NOTIFY channel naming changed orders (comma-separated ids) to every replica."""
NOTIFY_IDS = 150
"""Order ids per NOTIFY: PostgreSQL refuses a payload of 8,000 bytes or more."""


class OrdersUnitOfWork(UnitOfWork):
    """A unit of work whose aggregates' events go to the outbox when it commits. It names the
    orders it writes, so that the service can wake the readers waiting for them to change: in
    this process when it commits, and on PostgreSQL in every replica through NOTIFY (sent with
    the commit)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.changed_orders: set[str] = set()
        self.before_commit(self._notify_changed)

    async def _notify_changed(self, _conn: AsyncConnection) -> None:
        ids = sorted(self.changed_orders)
        for start in range(0, len(ids), NOTIFY_IDS):  # a payload is under 8,000 bytes
            self.notify(ORDER_CHANGES, ",".join(ids[start : start + NOTIFY_IDS]))

    @property
    def orders(self) -> OrderRepository:
        return OrderRepository(self)


# The statements of every saga: prepared statements (docs/architecture.md).
INSERT_ORDER = insert(orders)
INSERT_LINES = insert(order_lines)
SAVE_ORDER = update(orders).where(orders.c.id == bindparam("order_id"))  # SET: the other keys
THE_KEY = (
    idempotency_keys.c.customer_id == bindparam("customer"),
    idempotency_keys.c.key == bindparam("key_"),
)
DROP_KEY = delete(idempotency_keys).where(*THE_KEY)
CLAIM_KEY = insert(idempotency_keys)
COMPLETE_KEY = update(idempotency_keys).where(*THE_KEY)
RELEASE_KEY = delete(idempotency_keys).where(*THE_KEY, idempotency_keys.c.order_id.is_(None))
FIND_KEY = select(
    idempotency_keys.c.fingerprint, idempotency_keys.c.order_id, idempotency_keys.c.created_at
).where(*THE_KEY)
LISTED_PRICES = select(prices.c.product_id, prices.c.price, prices.c.currency).where(
    prices.c.product_id.in_(bindparam("products", expanding=True)), prices.c.listed.is_(True)
)
SOLD_OUT = select(prices.c.product_id).where(
    prices.c.product_id.in_(bindparam("products", expanding=True)), prices.c.available == 0
)
SET_AVAILABLE = update(prices).where(prices.c.product_id == bindparam("product"))


class OrderRepository:
    def __init__(self, uow: OrdersUnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    async def add(self, order: Order) -> None:
        await self._conn.execute(INSERT_ORDER, [_row(order)])
        await self._conn.execute(
            INSERT_LINES,
            [
                {
                    "order_id": order.id,
                    "line_no": number,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                }
                for number, line in enumerate(order.lines)
            ],
        )
        self._collect(order)

    async def get(self, order_id: str) -> Order | None:
        found = await load_orders(self._conn, [order_id])
        return found[0] if found else None

    async def save(self, order: Order) -> None:
        row = _row(order)
        del row["id"], row["created_at"]
        await self._conn.execute(SAVE_ORDER, {"order_id": order.id, **row})
        self._collect(order)

    def _collect(self, order: Order) -> None:
        self._uow.changed_orders.add(order.id)
        for event in order.events:
            self._uow.emit(event)
        order.events.clear()


def _row(order: Order) -> dict[str, object]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status.value,
        "currency": order.currency,
        "total": order.total,
        "payment_token": order.payment_token,
        "payment_requested": order.payment_requested,
        "cancel_reason": order.cancel_reason,
        "hold_expires_at": order.hold_expires_at,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


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


async def load_orders(conn: AsyncConnection, order_ids: Sequence[str]) -> list[Order]:
    rows = (await conn.execute(LOAD_ORDERS, {"ids": list(order_ids)})).all()
    lines: dict[str, list[Line]] = {}
    heads: dict[str, Row[Any]] = {}  # first row of each order, in id order
    for row in rows:
        heads.setdefault(row.id, row)
        if row.product_id is not None:
            lines.setdefault(row.id, []).append(Line(row.product_id, row.quantity, row.unit_price))
    return [
        Order(
            id=row.id,
            customer_id=row.customer_id,
            lines=tuple(lines.get(row.id, ())),
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


# -- idempotency keys ------------------------------------------------------------------------


async def find_key(
    conn: AsyncConnection, customer_id: str, key: str
) -> tuple[str, str | None, dt.datetime] | None:
    row = (await conn.execute(FIND_KEY, {"customer": customer_id, "key_": key})).first()
    return None if row is None else (row.fingerprint, row.order_id, row.created_at)


async def claim_key(
    conn: AsyncConnection, customer_id: str, key: str, fingerprint: str, now: dt.datetime
) -> None:
    await conn.execute(DROP_KEY, {"customer": customer_id, "key_": key})
    await conn.execute(
        CLAIM_KEY,
        {"customer_id": customer_id, "key": key, "fingerprint": fingerprint, "created_at": now},
    )


async def complete_key(conn: AsyncConnection, customer_id: str, key: str, order_id: str) -> None:
    await conn.execute(COMPLETE_KEY, {"customer": customer_id, "key_": key, "order_id": order_id})


async def release_key(conn: AsyncConnection, customer_id: str, key: str) -> None:
    await conn.execute(RELEASE_KEY, {"customer": customer_id, "key_": key})


# -- the price list (a read model of catalog events) -----------------------------------------


async def list_product(
    conn: AsyncConnection, product_id: str, price: Decimal, currency: str, seller_id: str | None
) -> None:
    await conn.execute(delete(prices).where(prices.c.product_id == product_id))
    await conn.execute(
        insert(prices).values(
            product_id=product_id, price=price, currency=currency, seller_id=seller_id, listed=True
        )
    )


async def set_price(conn: AsyncConnection, product_id: str, price: Decimal, currency: str) -> None:
    await conn.execute(
        update(prices)
        .where(prices.c.product_id == product_id)
        .values(price=price, currency=currency)
    )


async def set_listed(conn: AsyncConnection, product_id: str, listed: bool) -> None:
    await conn.execute(
        update(prices).where(prices.c.product_id == product_id).values(listed=listed)
    )


async def get_prices(
    conn: AsyncConnection, product_ids: Iterable[str]
) -> dict[str, tuple[Decimal, str]]:
    """Prices of those of `product_ids` that are listed."""
    rows = await conn.execute(LISTED_PRICES, {"products": list(product_ids)})
    return {row.product_id: (row.price, row.currency) for row in rows}


async def sold_out(conn: AsyncConnection, product_ids: Iterable[str]) -> list[str]:
    """Those of `product_ids` that inventory last announced as having none available."""
    rows = await conn.execute(SOLD_OUT, {"products": list(product_ids)})
    return sorted(rows.scalars())


async def set_available(conn: AsyncConnection, product_id: str, available: int) -> None:
    await conn.execute(SET_AVAILABLE, {"product": product_id, "available": available})


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
