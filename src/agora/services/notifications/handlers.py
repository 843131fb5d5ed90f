"""Notifications: a welcome email for every new account, an email for every order outcome,
every ticket issued or cancelled, every waiting-list offer made or lapsed, every whole order's
refund (to its buyer) and every payout sent (to the store's seller)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, func, select

from agora.auth import Principal, may_read
from agora.contracts import identity, inventory, orders, payments, ticketing
from agora.messaging import Database, Event, Handler, new_id, utcnow
from agora.services.notifications.mail import Mail, TicketQr
from agora.services.notifications.repository import NewMessage, NotificationsUnitOfWork
from agora.services.notifications.store import DELIVERED_LOCALLY, QUEUED, messages


class NotYourMessages(Exception):
    """Only an admin may read another customer's messages."""


async def list_messages(
    db: Database, caller: Principal, customer_id: str, *, page: int, page_size: int
) -> tuple[list[Row[Any]], int]:
    """One page of `customer_id`'s messages, oldest first, and how many there are in all."""
    if not may_read(caller, customer_id):
        raise NotYourMessages
    of_customer = messages.c.customer_id == customer_id
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(messages).where(of_customer))
        rows = await conn.execute(
            select(messages)
            .where(of_customer)
            .order_by(messages.c.created_at, messages.c.id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        return list(rows.all()), int(total or 0)


def recipient_for(customer_id: str) -> str:
    """The address of a customer id that names no registered user."""
    return customer_id if "@" in customer_id else f"{customer_id}@customers.agora.localhost"


def compose(
    event: orders.OrderConfirmed | orders.OrderCancelled | orders.OrderExpired, recipient: str
) -> Mail:
    if isinstance(event, orders.OrderConfirmed):
        return Mail(
            recipient,
            f"Order {event.order_id} confirmed",
            f"Thank you. Your order {event.order_id} is confirmed; "
            f"{event.total} {event.currency} was charged.",
        )
    if isinstance(event, orders.OrderCancelled):
        return Mail(
            recipient,
            f"Order {event.order_id} cancelled",
            f"Your order {event.order_id} was cancelled: {event.reason}. Nothing was charged.",
        )
    return Mail(
        recipient,
        f"Order {event.order_id} expired",
        f"Your order {event.order_id} was not paid in time; its items were released.",
    )


class NotificationHandlers:
    def __init__(self, *, smtp: bool, wake_sender: Callable[[], None]) -> None:
        self._smtp = smtp
        self._wake_sender = wake_sender

    @property
    def table(self) -> Mapping[type[Event], Handler[NotificationsUnitOfWork]]:
        return {
            identity.UserRegistered: self.on_user_registered,
            orders.OrderConfirmed: self.on_order_outcome,
            orders.OrderCancelled: self.on_order_outcome,
            orders.OrderExpired: self.on_order_outcome,
            ticketing.TicketIssued: self.on_ticket_issued,
            ticketing.TicketCancelled: self.on_ticket_cancelled,
            inventory.WaitlistOffered: self.on_waitlist_offered,
            inventory.WaitlistOfferLapsed: self.on_waitlist_offer_lapsed,
            payments.RefundIssued: self.on_refund_issued,
            payments.PayoutSent: self.on_payout_sent,
        }

    async def on_refund_issued(
        self, event: payments.RefundIssued, uow: NotificationsUnitOfWork
    ) -> None:
        """A whole order's refund (a cancelled ticket's buyer was told when it was
        cancelled)."""
        if event.ticket_id is not None or event.customer_id is None:
            return
        address = await uow.addresses.address_of(event.customer_id)
        mail = Mail(
            address or recipient_for(event.customer_id),
            f"Order {event.order_id} refunded",
            f"{event.amount} {event.currency} of your order {event.order_id} was refunded to "
            "your card.",
        )
        await self._queue(uow, event, event.customer_id, event.order_id, mail)

    async def on_payout_sent(
        self, event: payments.PayoutSent, uow: NotificationsUnitOfWork
    ) -> None:
        if event.seller_id is None:
            return
        address = await uow.addresses.address_of(event.seller_id)
        mail = Mail(
            address or recipient_for(event.seller_id),
            f"Payout of {event.amount} {event.currency} sent",
            f"{event.amount} {event.currency} of store {event.store_id}'s balance is on its way "
            f"to you (payout {event.payout_id}).",
        )
        await self._queue(uow, event, event.seller_id, None, mail)

    async def on_waitlist_offered(
        self, event: inventory.WaitlistOffered, uow: NotificationsUnitOfWork
    ) -> None:
        address = await uow.addresses.address_of(event.customer_id)
        seats = [place.seat_id for place in event.places if place.seat_id]
        places = f"seats {', '.join(seats)}" if seats else f"{event.quantity} places"
        mail = Mail(
            address or recipient_for(event.customer_id),
            f"Places for you: {event.quantity} x {event.category}",
            f"Places came back for session {event.session_id}, and they are yours until "
            f"{event.expires_at.isoformat(timespec='minutes')}: {places} ({event.category}).\n\n"
            f"See the offer: /api/waitlist/{event.entry_id}\n"
            "Take it with POST /api/orders and this ticket line:\n"
            f'{{"session_id": "{event.session_id}", "waitlist_id": "{event.entry_id}"}}\n\n'
            "If you do not, the places go to the next on the waiting list.",
        )
        await self._queue(uow, event, event.customer_id, None, mail)

    async def on_waitlist_offer_lapsed(
        self, event: inventory.WaitlistOfferLapsed, uow: NotificationsUnitOfWork
    ) -> None:
        address = await uow.addresses.address_of(event.customer_id)
        mail = Mail(
            address or recipient_for(event.customer_id),
            "Your waiting-list offer has passed on",
            f"The places offered to you for session {event.session_id} were not taken "
            f"({event.reason}); they went to the next on the waiting list.",
        )
        await self._queue(uow, event, event.customer_id, None, mail)

    async def on_ticket_cancelled(
        self, event: ticketing.TicketCancelled, uow: NotificationsUnitOfWork
    ) -> None:
        address = await uow.addresses.address_of(event.customer_id)
        mail = Mail(
            address or recipient_for(event.customer_id),
            f"Ticket {event.ticket_id} cancelled",
            f"Your ticket {event.ticket_id} for session {event.session_id} is cancelled: "
            f"{event.reason}. {event.price} {event.currency} is refunded to your card.",
        )
        await self._queue(uow, event, event.customer_id, event.order_id, mail)

    async def on_ticket_issued(
        self, event: ticketing.TicketIssued, uow: NotificationsUnitOfWork
    ) -> None:
        address = await uow.addresses.address_of(event.customer_id)
        place = f"seat {event.seat_id}" if event.seat_id else f"a place in {event.area_id}"
        mail = Mail(
            address or recipient_for(event.customer_id),
            f"Your ticket: {place}",
            f"Your ticket {event.ticket_id} ({event.category}, {place}) for session "
            f"{event.session_id} of order {event.order_id}.\n\n"
            f"Show its QR code at the door: /api/tickets/{event.ticket_id}/qr.svg (or .png).\n"
            f"The code it carries, should a scanner ask for it:\n{event.code}\n",
            TicketQr(event.ticket_id, event.code),
        )
        await self._queue(uow, event, event.customer_id, event.order_id, mail)

    async def on_order_outcome(
        self,
        event: orders.OrderConfirmed | orders.OrderCancelled | orders.OrderExpired,
        uow: NotificationsUnitOfWork,
    ) -> None:
        address = await uow.addresses.address_of(event.customer_id)
        mail = compose(event, address or recipient_for(event.customer_id))
        await self._queue(uow, event, event.customer_id, event.order_id, mail)

    async def on_user_registered(
        self, event: identity.UserRegistered, uow: NotificationsUnitOfWork
    ) -> None:
        await uow.addresses.remember(event.user_id, event.email, utcnow())
        mail = Mail(
            event.email,
            "Welcome to Agora",
            f"Your {event.role} account for {event.email} is ready. If you did not register, "
            "ignore this message.",
        )
        await self._queue(uow, event, event.user_id, None, mail)

    async def _queue(
        self,
        uow: NotificationsUnitOfWork,
        event: Event,
        customer_id: str,
        order_id: str | None,
        mail: Mail,
    ) -> None:
        assert uow.cause is not None
        now = utcnow()
        await uow.messages.add(
            NewMessage(
                id=new_id(),
                event_id=uow.cause.id,
                customer_id=customer_id,
                order_id=order_id,
                kind=event.type_name(),
                mail=mail,
                status=QUEUED if self._smtp else DELIVERED_LOCALLY,
                created_at=now,
                sent_at=None if self._smtp else now,
            )
        )
        if self._smtp:
            uow.after_commit(self._wake_sender)
