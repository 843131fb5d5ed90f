"""How orders' handlers change its rows: the repositories of one unit of work. An order is one
aggregate (`OrderRepository`); beside it live the idempotency keys of the orders placed
(`IdempotencyKeys`) and the price list learned from catalog and inventory events (`PriceList`).
Tests hold handlers to them with in-memory twins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork
from agora.services.orders.domain import Order, Seller
from agora.services.orders.sessions import SessionsOnSale
from agora.services.orders.store import (
    idempotency_keys,
    load_orders,
    order_lines,
    order_places,
    order_tickets,
    orders,
    prices,
)

__all__ = [
    "NOTIFY_IDS",
    "ORDER_CHANGES",
    "IdempotencyKeys",
    "OrderRepository",
    "OrdersUnitOfWork",
    "PriceList",
]

ORDER_CHANGES = "agora_orders_changed"
"""The PostgreSQL NOTIFY channel naming changed orders (comma-separated ids) to every replica."""
NOTIFY_IDS = 150
"""Order ids per NOTIFY: PostgreSQL refuses a payload of 8,000 bytes or more."""


class OrderRepository:
    """Orders with their lines, in the unit of work's transaction. Every order added or saved is
    handed to `seen`, which emits the events it recorded and names it as changed."""

    def __init__(self, conn: AsyncConnection, seen: Callable[[Order], None]) -> None:
        self._conn = conn
        self._seen = seen

    async def add(self, order: Order) -> None:
        """Write a new order and its lines of goods and of tickets (which never change after)."""
        await self._conn.execute(INSERT_ORDER, [_row(order)])
        if order.lines:
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
        if order.tickets:
            await self._conn.execute(
                INSERT_TICKETS,
                [
                    {
                        "order_id": order.id,
                        "line_no": number,
                        "session_id": ticket.session_id,
                        "category": ticket.category,
                        "quantity": ticket.quantity,
                        "unit_price": ticket.unit_price,
                        "seat_ids": orjson.dumps(ticket.seat_ids).decode(),
                        "customer_id": order.customer_id,
                        "waitlist_id": ticket.waitlist_id,
                    }
                    for number, ticket in enumerate(order.tickets)
                ],
            )
        self._seen(order)

    async def add_places(self, order: Order) -> None:
        """Write the places held for the order's tickets (once: when it is reserved)."""
        if order.places:
            await self._conn.execute(
                INSERT_PLACES,
                [
                    {
                        "order_id": order.id,
                        "place_no": number,
                        "session_id": place.session_id,
                        "category": place.category,
                        "seat_id": place.seat_id,
                        "area_id": place.area_id,
                    }
                    for number, place in enumerate(order.places)
                ],
            )

    async def get(self, order_id: str) -> Order | None:
        """The order as last saved, with no events recorded; None if there is none."""
        found = await load_orders(self._conn, [order_id])
        return found[0] if found else None

    async def save(self, order: Order) -> None:
        """Write the order's state (not its lines: they never change)."""
        row = _row(order)
        del row["id"], row["created_at"]
        await self._conn.execute(SAVE_ORDER, {"order_id": order.id, **row})
        self._seen(order)


class IdempotencyKeys:
    """Each customer's idempotency keys: a key is claimed by a request's body (its fingerprint)
    with the order it places, in the transaction that writes the order."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, customer_id: str, key: str) -> tuple[str, str | None, dt.datetime] | None:
        """The key's fingerprint, its order (None while in flight) and when it was claimed."""
        row = (await self._conn.execute(FIND_KEY, {"customer": customer_id, "key_": key})).first()
        return None if row is None else (row.fingerprint, row.order_id, row.created_at)

    async def claim(
        self,
        customer_id: str,
        key: str,
        fingerprint: str,
        now: dt.datetime,
        *,
        order_id: str | None = None,
    ) -> bool:
        """Claim the key for `fingerprint` and the order it places (replacing any claim of it).
        False if a concurrent transaction claimed it first: the unit of work can then only be
        rolled back."""
        await self._conn.execute(DROP_KEY, {"customer": customer_id, "key_": key})
        try:
            await self._conn.execute(
                CLAIM_KEY,
                {
                    "customer_id": customer_id,
                    "key": key,
                    "fingerprint": fingerprint,
                    "order_id": order_id,
                    "created_at": now,
                },
            )
        except IntegrityError:
            return False
        return True


class PriceList:
    """What orders knows of products: price, currency and seller from catalog, whether they are
    listed, and what inventory last announced available (None until it has)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def list_product(
        self,
        product_id: str,
        price: Decimal,
        currency: str,
        seller_id: str | None,
        store_id: str | None = None,
    ) -> None:
        """The product is listed at `price`, as new: what was known of it before is forgotten
        (its availability too)."""
        await self._conn.execute(FORGET_PRODUCT, {"product": product_id})
        await self._conn.execute(
            LIST_PRODUCT,
            {
                "product_id": product_id,
                "price": price,
                "currency": currency,
                "seller_id": seller_id,
                "store_id": store_id,
                "listed": True,
            },
        )

    async def reprice(self, product_id: str, price: Decimal, currency: str) -> None:
        """A known product's new price; nothing for a product never listed."""
        await self._conn.execute(
            UPDATE_PRODUCT, {"product": product_id, "price": price, "currency": currency}
        )

    async def set_listed(self, product_id: str, listed: bool) -> None:
        """Whether a known product may be ordered; nothing for a product never listed."""
        await self._conn.execute(UPDATE_PRODUCT, {"product": product_id, "listed": listed})

    async def set_available(self, product_id: str, available: int) -> None:
        """What inventory last announced available of a known product."""
        await self._conn.execute(UPDATE_PRODUCT, {"product": product_id, "available": available})

    async def listed(self, product_ids: Iterable[str]) -> dict[str, tuple[Decimal, str]]:
        """Price and currency of those of `product_ids` that are listed."""
        rows = await self._conn.execute(LISTED_PRICES, {"products": list(product_ids)})
        return {row.product_id: (row.price, row.currency) for row in rows}

    async def sellers(self, product_ids: Iterable[str]) -> dict[str, Seller]:
        """The store and seller of those of `product_ids` that are known."""
        rows = await self._conn.execute(SELLERS_OF_PRODUCTS, {"products": list(product_ids)})
        return {row.product_id: Seller(row.store_id, row.seller_id) for row in rows}

    async def sold_out(self, product_ids: Iterable[str]) -> list[str]:
        """Those of `product_ids` that inventory last announced as having none available,
        sorted."""
        rows = await self._conn.execute(SOLD_OUT, {"products": list(product_ids)})
        return sorted(rows.scalars())


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
        for start in range(0, len(ids), NOTIFY_IDS):
            self.notify(ORDER_CHANGES, ",".join(ids[start : start + NOTIFY_IDS]))

    def _seen(self, order: Order) -> None:
        self.changed_orders.add(order.id)
        for event in order.events:
            self.emit(event)
        order.events.clear()

    @property
    def orders(self) -> OrderRepository:
        return OrderRepository(self.conn, self._seen)

    @property
    def keys(self) -> IdempotencyKeys:
        return IdempotencyKeys(self.conn)

    @property
    def prices(self) -> PriceList:
        return PriceList(self.conn)

    @property
    def sessions(self) -> SessionsOnSale:
        return SessionsOnSale(self.conn)


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


# Prepared statements (docs/architecture.md): every saga's step runs some of them.
INSERT_ORDER = insert(orders)
INSERT_LINES = insert(order_lines)
INSERT_TICKETS = insert(order_tickets)
INSERT_PLACES = insert(order_places)
SAVE_ORDER = update(orders).where(orders.c.id == bindparam("order_id"))  # SET: the other keys
THE_KEY = (
    idempotency_keys.c.customer_id == bindparam("customer"),
    idempotency_keys.c.key == bindparam("key_"),
)
DROP_KEY = delete(idempotency_keys).where(*THE_KEY)
CLAIM_KEY = insert(idempotency_keys)
FIND_KEY = select(
    idempotency_keys.c.fingerprint, idempotency_keys.c.order_id, idempotency_keys.c.created_at
).where(*THE_KEY)
THE_PRODUCT = prices.c.product_id == bindparam("product")
FORGET_PRODUCT = delete(prices).where(THE_PRODUCT)
LIST_PRODUCT = insert(prices)
UPDATE_PRODUCT = update(prices).where(THE_PRODUCT)  # SET: the other keys
LISTED_PRICES = select(prices.c.product_id, prices.c.price, prices.c.currency).where(
    prices.c.product_id.in_(bindparam("products", expanding=True)), prices.c.listed.is_(True)
)
SELLERS_OF_PRODUCTS = select(prices.c.product_id, prices.c.store_id, prices.c.seller_id).where(
    prices.c.product_id.in_(bindparam("products", expanding=True))
)
SOLD_OUT = select(prices.c.product_id).where(
    prices.c.product_id.in_(bindparam("products", expanding=True)), prices.c.available == 0
)
