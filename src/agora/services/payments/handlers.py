"""Payments' use cases: take a payment request, charge at the provider (retrying transient
failures with backoff), refund what an ended order was charged, and a cancelled ticket's
price."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agora.auth import Principal, may_read
from agora.contracts import orders, ticketing
from agora.messaging import Database, Event, Handler, utcnow
from agora.services.payments.domain import Payment, PaymentNotFound
from agora.services.payments.repository import PaymentsUnitOfWork
from agora.services.payments.store import payment_of_order


class PaymentsHandlers:
    """The handler table, bound to the processor it wakes when a payment becomes its turn.
    Handlers work through `uow.payments` (the repository); they never write SQL themselves."""

    def __init__(self, wake_processor: Callable[[], None]) -> None:
        self._wake_processor = wake_processor

    @property
    def table(self) -> Mapping[type[Event], Handler[PaymentsUnitOfWork]]:
        return {
            orders.PaymentRequested: self.on_payment_requested,
            orders.OrderCancelled: self.on_order_ended,
            orders.OrderExpired: self.on_order_ended,
            ticketing.TicketCancelled: self.on_ticket_cancelled,
        }

    async def on_ticket_cancelled(
        self, event: ticketing.TicketCancelled, uow: PaymentsUnitOfWork
    ) -> None:
        """The ticket's price goes back, once per ticket, from the order's charged payment."""
        assert uow.cause is not None
        key = f"ticket:{event.ticket_id}"
        if await uow.payments.refund_part(event.order_id, key, event.price, uow.cause.id, utcnow()):
            uow.after_commit(self._wake_processor)

    async def on_payment_requested(
        self, event: orders.PaymentRequested, uow: PaymentsUnitOfWork
    ) -> None:
        """One payment per order: a request repeated for an order charges nothing more."""
        assert uow.cause is not None
        added = await uow.payments.add(
            event.order_id,
            event.customer_id,
            event.amount,
            event.currency,
            event.payment_token,
            requested_by=uow.cause.id,
            now=utcnow(),
        )
        if added:
            uow.after_commit(self._wake_processor)

    async def on_order_ended(
        self, event: orders.OrderCancelled | orders.OrderExpired, uow: PaymentsUnitOfWork
    ) -> None:
        """An order that ended is not charged; if it was, the charge is refunded."""
        now = utcnow()
        await uow.payments.void(event.order_id, now)
        if await uow.payments.refund(event.order_id, now):
            uow.after_commit(self._wake_processor)


async def payment_of(db: Database, caller: Principal, order_id: str) -> Payment:
    """The payment of `order_id` with its attempts, for the order's buyer and admins;
    `PaymentNotFound` for anyone else."""
    async with db.read() as conn:
        payment = await payment_of_order(conn, order_id)
    if payment is None or not may_read(caller, payment.customer_id):
        raise PaymentNotFound(order_id)
    return payment
