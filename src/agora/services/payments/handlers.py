"""Payments' use cases: take a payment request, charge at the provider (retrying transient
failures with backoff), refund what an ended order was charged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import update

from agora.auth import Principal, may_read
from agora.contracts import orders
from agora.messaging import Database, Event, Handler, UnitOfWork, new_id, utcnow
from agora.services.payments.domain import Payment, PaymentNotFound
from agora.services.payments.store import (
    CHARGING,
    NEW_PAYMENT,
    PAYMENT_OF_ORDER,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    payment_of_order,
    payments,
)

logger = logging.getLogger(__name__)


class PaymentsHandlers:
    def __init__(self, wake_processor: Callable[[], None]) -> None:
        self._wake_processor = wake_processor

    @property
    def table(self) -> Mapping[type[Event], Handler[Any]]:
        return {
            orders.PaymentRequested: self.on_payment_requested,
            orders.OrderCancelled: self.on_order_ended,
            orders.OrderExpired: self.on_order_ended,
        }

    async def on_payment_requested(self, event: orders.PaymentRequested, uow: UnitOfWork) -> None:
        existing = await uow.conn.scalar(PAYMENT_OF_ORDER, {"order": event.order_id})
        if existing is not None:
            return
        now = utcnow()
        assert uow.cause is not None
        await uow.conn.execute(
            NEW_PAYMENT,
            {
                "id": new_id(),
                "requested_by": uow.cause.id,
                "order_id": event.order_id,
                "customer_id": event.customer_id,
                "amount": event.amount,
                "currency": event.currency,
                "token": event.payment_token,
                "state": CHARGING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        uow.after_commit(self._wake_processor)

    async def on_order_ended(
        self, event: orders.OrderCancelled | orders.OrderExpired, uow: UnitOfWork
    ) -> None:
        """An order that ended is not charged; if it was, the charge is refunded."""
        now = utcnow()
        await uow.conn.execute(
            update(payments)
            .where(payments.c.order_id == event.order_id, payments.c.state == CHARGING)
            .values(state=VOIDED, updated_at=now)
        )
        refund = await uow.conn.execute(
            update(payments)
            .where(payments.c.order_id == event.order_id, payments.c.state == SUCCEEDED)
            .values(state=REFUNDING, next_attempt_at=now, updated_at=now)
        )
        if refund.rowcount:
            uow.after_commit(self._wake_processor)


async def payment_of(db: Database, caller: Principal, order_id: str) -> Payment:
    """The payment of `order_id` with its attempts, for the order's buyer and admins;
    `PaymentNotFound` for anyone else."""
    async with db.read() as conn:
        payment = await payment_of_order(conn, order_id)
    if payment is None or not may_read(caller, payment.customer_id):
        raise PaymentNotFound(order_id)
    return payment
