"""Payments' use cases: take a payment request (with its shares per store and the commission on
each), charge at the provider (retrying transient failures with backoff), refund what an ended
order was charged, and a cancelled ticket's price; and learn sellers' plans and stores'
owners, for the commission and for who may read a store's balance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from agora.auth import Principal, may_read
from agora.contracts import catalog, identity, orders, ticketing
from agora.messaging import Database, Event, Handler, utcnow
from agora.services.payments.domain import Payment, PaymentNotFound
from agora.services.payments.ledger import CommissionRates, Share, commissions, to_minor
from agora.services.payments.repository import NewShare, PaymentsUnitOfWork
from agora.services.payments.store import payment_of_order


class PaymentsHandlers:
    """The handler table, bound to the processor it wakes when a payment becomes its turn.
    Handlers work through `uow.payments` and `uow.ledger` (the repositories); they never write
    SQL themselves."""

    def __init__(
        self, wake_processor: Callable[[], None], rates: CommissionRates | None = None
    ) -> None:
        self._wake_processor = wake_processor
        self._rates = rates or CommissionRates()

    @property
    def table(self) -> Mapping[type[Event], Handler[PaymentsUnitOfWork]]:
        return {
            orders.PaymentRequested: self.on_payment_requested,
            orders.OrderCancelled: self.on_order_ended,
            orders.OrderExpired: self.on_order_ended,
            ticketing.TicketCancelled: self.on_ticket_cancelled,
            identity.UserRegistered: self.on_user_registered,
            identity.PlanChanged: self.on_plan_changed,
            catalog.StoreOpened: self.on_store_opened,
        }

    async def on_user_registered(
        self, event: identity.UserRegistered, uow: PaymentsUnitOfWork
    ) -> None:
        if event.role == "seller":
            await uow.ledger.set_plan(event.user_id, event.plan)

    async def on_plan_changed(self, event: identity.PlanChanged, uow: PaymentsUnitOfWork) -> None:
        await uow.ledger.set_plan(event.user_id, event.plan)

    async def on_store_opened(self, event: catalog.StoreOpened, uow: PaymentsUnitOfWork) -> None:
        await uow.ledger.set_owner(event.store_id, event.seller_id)

    async def on_ticket_cancelled(
        self, event: ticketing.TicketCancelled, uow: PaymentsUnitOfWork
    ) -> None:
        """The ticket's price goes back, once per ticket, from the order's charged payment."""
        assert uow.cause is not None
        key = f"ticket:{event.ticket_id}"
        if await uow.payments.refund_part(
            event.order_id, key, event.price, uow.cause.id, utcnow(), session_id=event.session_id
        ):
            uow.after_commit(self._wake_processor)

    async def on_payment_requested(
        self, event: orders.PaymentRequested, uow: PaymentsUnitOfWork
    ) -> None:
        """One payment per order: a request repeated for an order charges nothing more."""
        assert uow.cause is not None
        payment_id = await uow.payments.add(
            event.order_id,
            event.customer_id,
            event.amount,
            event.currency,
            event.payment_token,
            requested_by=uow.cause.id,
            now=utcnow(),
        )
        if payment_id is not None:
            await uow.ledger.add_shares(payment_id, await self._shares(event, uow))
            uow.after_commit(self._wake_processor)

    async def on_order_ended(
        self, event: orders.OrderCancelled | orders.OrderExpired, uow: PaymentsUnitOfWork
    ) -> None:
        """An order that ended is not charged; if it was, the charge is refunded."""
        now = utcnow()
        await uow.payments.void(event.order_id, now)
        if await uow.payments.refund(event.order_id, now):
            uow.after_commit(self._wake_processor)

    async def _shares(
        self, event: orders.PaymentRequested, uow: PaymentsUnitOfWork
    ) -> list[NewShare]:
        """The request's shares in minor units, with the commission at each seller's rate.
        What the shares leave of the amount (all of it, for a request without shares) is the
        platform's own sale, without commission."""
        currency = event.currency
        shares = [
            (share.store_id, share.seller_id, share.session_id, to_minor(share.amount, currency))
            for share in event.shares
        ]
        rest = to_minor(event.amount, currency) - sum(amount for *_, amount in shares)
        if rest < 0:
            raise ValueError(f"the shares of order {event.order_id} exceed its amount")
        if rest or not shares:
            shares.append((None, None, None, rest))
        sellers = {seller for _, seller, _, _ in shares if seller}
        plans = await uow.ledger.plans(sellers) if sellers else {}
        rates = [
            Decimal(0) if store is None else self._rates.of(plans.get(seller or ""))
            for store, seller, _, _ in shares
        ]
        taken = commissions([amount for *_, amount in shares], rates)
        return [
            NewShare(Share(store, amount, commission, session), seller, rate)
            for (store, seller, session, amount), commission, rate in zip(
                shares, taken, rates, strict=True
            )
        ]


async def payment_of(db: Database, caller: Principal, order_id: str) -> Payment:
    """The payment of `order_id` with its attempts, for the order's buyer and admins;
    `PaymentNotFound` for anyone else."""
    async with db.read() as conn:
        payment = await payment_of_order(conn, order_id)
    if payment is None or not may_read(caller, payment.customer_id):
        raise PaymentNotFound(order_id)
    return payment
