"""Inventory's reactions: stock for listed products, holds for placed orders, and their end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts import catalog, orders
from agora.contracts.inventory import (
    AvailabilityChanged,
    HoldExpired,
    ReservedLine,
    StockRejected,
    StockReleased,
    StockReserved,
)
from agora.messaging import Event, Handler, UnitOfWork, utcnow
from agora.services.inventory.locking import LOCK_TIMEOUT, Shortage, lock_stock, reserve_lines
from agora.services.inventory.store import HELD, RELEASED, SOLD, holds, stock


class InventoryHandlers:
    """The handler table, bound to the hold time the service was configured with."""

    def __init__(self, hold_time: dt.timedelta, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.hold_time = hold_time
        self.lock_timeout = lock_timeout

    @property
    def table(self) -> Mapping[type[Event], Handler[Any]]:
        return {
            catalog.ProductListed: self.on_product_listed,
            orders.OrderPlaced: self.on_order_placed,
            orders.OrderConfirmed: self.on_order_confirmed,
            orders.OrderCancelled: self.on_order_ended,
            orders.OrderExpired: self.on_order_ended,
        }

    async def lock_batch(self, events: Sequence[Event], uow: UnitOfWork) -> None:
        """Take the stock rows the batch will touch, all at once and in order (see locking)."""
        products = {
            line.product_id
            for event in events
            if isinstance(event, orders.OrderPlaced)
            for line in event.lines
        }
        ending = [
            event.order_id
            for event in events
            if isinstance(
                event, orders.OrderConfirmed | orders.OrderCancelled | orders.OrderExpired
            )
        ]
        if ending:
            rows = await uow.conn.execute(
                select(holds.c.product_id).where(holds.c.order_id.in_(ending)).distinct()
            )
            products.update(rows.scalars())
        await lock_stock(uow.conn, products, timeout=self.lock_timeout)

    async def on_product_listed(self, event: catalog.ProductListed, uow: UnitOfWork) -> None:
        exists = await uow.conn.scalar(
            select(func.count()).select_from(stock).where(stock.c.product_id == event.product_id)
        )
        if exists:
            return
        await uow.conn.execute(
            insert(stock).values(
                product_id=event.product_id,
                available=event.initial_stock,
                reserved=0,
                sold=0,
                seller_id=event.seller_id,
            )
        )
        uow.emit(AvailabilityChanged(product_id=event.product_id, available=event.initial_stock))

    async def on_order_placed(self, event: orders.OrderPlaced, uow: UnitOfWork) -> None:
        lines = [(line.product_id, line.quantity) for line in event.lines]
        try:
            available = await reserve_lines(uow.conn, lines)
        except Shortage as shortage:
            uow.emit(
                StockRejected(
                    order_id=event.order_id,
                    reason=str(shortage),
                    product_id=shortage.product_id,
                )
            )
            return
        expires_at = utcnow() + self.hold_time
        await uow.conn.execute(
            insert(holds),
            [
                {
                    "order_id": event.order_id,
                    "product_id": product_id,
                    "quantity": quantity,
                    "state": HELD,
                    "expires_at": expires_at,
                    "expiry_announced": False,
                }
                for product_id, quantity in lines
            ],
        )
        uow.emit(
            StockReserved(
                order_id=event.order_id,
                lines=tuple(ReservedLine(product_id=p, quantity=q) for p, q in lines),
                expires_at=expires_at,
            )
        )
        for product_id, count in available.items():
            uow.emit(AvailabilityChanged(product_id=product_id, available=count))

    async def on_order_confirmed(self, event: orders.OrderConfirmed, uow: UnitOfWork) -> None:
        for product_id, quantity in await _end_holds(uow, event.order_id, SOLD):
            await uow.conn.execute(SELL, {"product": product_id, "quantity": quantity})

    async def on_order_ended(
        self, event: orders.OrderCancelled | orders.OrderExpired, uow: UnitOfWork
    ) -> None:
        released = await _end_holds(uow, event.order_id, RELEASED)
        if not released:
            return
        for product_id, quantity in sorted(released):
            result = await uow.conn.execute(
                update(stock)
                .where(stock.c.product_id == product_id)
                .values(
                    available=stock.c.available + quantity, reserved=stock.c.reserved - quantity
                )
                .returning(stock.c.available)
            )
            uow.emit(AvailabilityChanged(product_id=product_id, available=result.scalar_one()))
        reason = "order expired" if isinstance(event, orders.OrderExpired) else event.reason
        uow.emit(StockReleased(order_id=event.order_id, reason=reason))


# Built once (SQLAlchemy skips building and hashing an expression per call).
SELL = (
    update(stock)
    .where(stock.c.product_id == bindparam("product"))
    .values(
        reserved=stock.c.reserved - bindparam("quantity"),
        sold=stock.c.sold + bindparam("quantity"),
    )
)
END_HOLDS = (
    update(holds)
    .where(holds.c.order_id == bindparam("order"), holds.c.state == bindparam("held"))
    .values(state=bindparam("new_state"))
    .returning(holds.c.product_id, holds.c.quantity)
)


async def _end_holds(uow: UnitOfWork, order_id: str, state: str) -> list[tuple[str, int]]:
    """Move the order's held lines to `state`; returns the lines that were held."""
    ending = {"order": order_id, "held": HELD, "new_state": state}
    result = await uow.conn.execute(END_HOLDS, ending)
    return [(row.product_id, row.quantity) for row in result]


async def announce_expired_holds(uow: UnitOfWork, limit: int = 500) -> list[str]:
    """Publish HoldExpired once for each order whose hold has run out; returns those orders."""
    now = utcnow()
    result = await uow.conn.execute(
        select(holds.c.order_id)
        .where(
            holds.c.state == HELD,
            ~holds.c.expiry_announced,
            holds.c.expires_at <= now,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)  # replicas' sweepers share the work
    )
    order_ids = list(dict.fromkeys(result.scalars()))
    if order_ids:
        await uow.conn.execute(
            update(holds).where(holds.c.order_id.in_(order_ids)).values(expiry_announced=True)
        )
        for order_id in order_ids:
            uow.emit(HoldExpired(order_id=order_id))
    return order_ids


async def next_expiry(conn: AsyncConnection) -> dt.datetime | None:
    """When the first hold not yet announced runs out."""
    value: dt.datetime | None = await conn.scalar(
        select(holds.c.expires_at)
        .where(holds.c.state == HELD, ~holds.c.expiry_announced)
        .order_by(holds.c.expires_at)
        .limit(1)
    )
    return value
