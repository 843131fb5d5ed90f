"""Notifications' handlers against in-memory twins of their repositories, and against the real
ones on SQLite (so that the twins cannot drift from what the handlers get in production); and
the mail dispatcher on SQLite."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import select

from agora.contracts import identity, orders, payments, ticketing
from agora.messaging import Envelope, Event
from agora.messaging.sql import Database, sqlite_url
from agora.services.notifications import store
from agora.services.notifications.handlers import NotificationHandlers
from agora.services.notifications.mail import Mail, TicketQr
from agora.services.notifications.repository import (
    AddressesRepository,
    MessagesRepository,
    NewMessage,
    mail_of,
)
from agora.services.notifications.workers import MailDispatcher

# What a test compares of a message: who, about what, to where, and whether it is sent.
Summary = tuple[str, str | None, str, str, str, str, bool]


class InMemoryAddresses:
    """`AddressesRepository`'s twin."""

    def __init__(self) -> None:
        self.emails: dict[str, str] = {}

    async def address_of(self, user_id: str) -> str | None:
        return self.emails.get(user_id)

    async def remember(self, user_id: str, email: str, at: dt.datetime) -> bool:
        if user_id in self.emails:
            return False
        self.emails[user_id] = email
        return True


class InMemoryMessages:
    """`MessagesRepository`'s twin (what the handlers use of it)."""

    def __init__(self) -> None:
        self.added: list[NewMessage] = []

    async def add(self, message: NewMessage) -> None:
        self.added.append(message)


class _Unit:
    def __init__(self, addresses: Any, messages: Any, cause: Envelope) -> None:
        self.addresses = addresses
        self.messages = messages
        self.cause = cause
        self.woken: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.woken.append(callback)


class Work(Protocol):
    wake_ups: int

    async def apply(self, handle: Any, event: Event) -> None: ...

    async def address_of(self, user_id: str) -> str | None: ...

    async def messages(self) -> list[Summary]: ...

    async def mails(self) -> list[Mail]: ...


def _summary(
    customer_id: str,
    order_id: str | None,
    kind: str,
    recipient: str,
    subject: str,
    status: str,
    sent: bool,
) -> Summary:
    return (customer_id, order_id, kind, recipient, subject, status, sent)


class MemoryWork:
    def __init__(self) -> None:
        self.addresses = InMemoryAddresses()
        self.stored = InMemoryMessages()
        self.wake_ups = 0

    async def apply(self, handle: Any, event: Event) -> None:
        unit = _Unit(self.addresses, self.stored, Envelope.wrap(event, source="test"))
        await handle(event, unit)
        self.wake_ups += len(unit.woken)

    async def address_of(self, user_id: str) -> str | None:
        return await self.addresses.address_of(user_id)

    async def messages(self) -> list[Summary]:
        return [
            _summary(
                m.customer_id,
                m.order_id,
                m.kind,
                m.mail.recipient,
                m.mail.subject,
                m.status,
                m.sent_at is not None,
            )
            for m in sorted(self.stored.added, key=lambda m: m.created_at)
        ]

    async def mails(self) -> list[Mail]:
        return [m.mail for m in sorted(self.stored.added, key=lambda m: m.created_at)]


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.wake_ups = 0

    async def apply(self, handle: Any, event: Event) -> None:
        async with self.db.write() as conn:
            unit = _Unit(
                AddressesRepository(conn),
                MessagesRepository(conn),
                Envelope.wrap(event, source="test"),
            )
            await handle(event, unit)
        self.wake_ups += len(unit.woken)

    async def address_of(self, user_id: str) -> str | None:
        async with self.db.read() as conn:
            return await AddressesRepository(conn).address_of(user_id)

    async def messages(self) -> list[Summary]:
        m = store.messages.c
        async with self.db.read() as conn:
            rows = await conn.execute(select(store.messages).order_by(m.created_at, m.id))
            return [
                _summary(
                    r.customer_id,
                    r.order_id,
                    r.kind,
                    r.recipient,
                    r.subject,
                    r.status,
                    r.sent_at is not None,
                )
                for r in rows
            ]

    async def mails(self) -> list[Mail]:
        m = store.messages.c
        async with self.db.read() as conn:
            rows = await conn.execute(select(store.messages).order_by(m.created_at, m.id))
            return [mail_of(row) for row in rows]


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "notifications.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


def mailbox() -> NotificationHandlers:
    """Handlers of the embedded default: messages go to the local mailbox."""
    return NotificationHandlers(smtp=False, wake_sender=lambda: None)


def registered(user_id: str, email: str) -> identity.UserRegistered:
    return identity.UserRegistered(user_id=user_id, email=email, role="buyer", plan="free")


def confirmed(order_id: str, customer_id: str) -> orders.OrderConfirmed:
    return orders.OrderConfirmed(
        order_id=order_id, customer_id=customer_id, total=Decimal("9.50"), currency="EUR"
    )


async def test_a_new_account_is_welcomed_and_its_first_address_is_kept(work: Work) -> None:
    handlers = mailbox()

    await work.apply(handlers.on_user_registered, registered("u1", "ann@example.test"))
    await work.apply(handlers.on_user_registered, registered("u1", "other@example.test"))

    assert await work.address_of("u1") == "ann@example.test"
    welcome = ("u1", None, "UserRegistered")
    assert await work.messages() == [
        (*welcome, "ann@example.test", "Welcome to Agora", store.DELIVERED_LOCALLY, True),
        (*welcome, "other@example.test", "Welcome to Agora", store.DELIVERED_LOCALLY, True),
    ]


async def test_an_order_outcome_is_mailed_to_the_address_the_customer_registered(
    work: Work,
) -> None:
    handlers = mailbox()
    await work.apply(handlers.on_user_registered, registered("u1", "ann@example.test"))

    await work.apply(handlers.on_order_outcome, confirmed("o1", "u1"))
    await work.apply(
        handlers.on_order_outcome,
        orders.OrderCancelled(order_id="o2", customer_id="u1", reason="out of stock"),
    )
    await work.apply(
        handlers.on_order_outcome, orders.OrderExpired(order_id="o3", customer_id="u1")
    )

    outcomes = (await work.messages())[1:]
    assert [(m[1], m[2], m[3], m[4]) for m in outcomes] == [
        ("o1", "OrderConfirmed", "ann@example.test", "Order o1 confirmed"),
        ("o2", "OrderCancelled", "ann@example.test", "Order o2 cancelled"),
        ("o3", "OrderExpired", "ann@example.test", "Order o3 expired"),
    ]
    assert work.wake_ups == 0  # nothing to send: the mailbox has them


async def test_a_customer_who_never_registered_is_mailed_at_the_customer_id(
    work: Work,
) -> None:
    handlers = mailbox()

    await work.apply(handlers.on_order_outcome, confirmed("o1", "bob@example.test"))
    await work.apply(handlers.on_order_outcome, confirmed("o2", "guest-7"))

    assert [m[3] for m in await work.messages()] == [
        "bob@example.test",
        "guest-7@customers.agora.localhost",
    ]


async def test_with_smtp_a_message_is_queued_and_the_dispatcher_woken(work: Work) -> None:
    handlers = NotificationHandlers(smtp=True, wake_sender=lambda: None)

    await work.apply(handlers.on_order_outcome, confirmed("o1", "bob@example.test"))

    ((*_, status, sent),) = await work.messages()
    assert (status, sent) == (store.QUEUED, False)
    assert work.wake_ups == 1


def issued(ticket_id: str, customer_id: str) -> ticketing.TicketIssued:
    return ticketing.TicketIssued(
        ticket_id=ticket_id,
        order_id="o1",
        customer_id=customer_id,
        event_id="e1",
        session_id="s1",
        category="stalls",
        seat_id="main-D-1",
        code=f"signed.code.of-{ticket_id}",
    )


async def test_a_ticket_is_mailed_with_its_qr_code_and_other_mail_without(work: Work) -> None:
    handlers = NotificationHandlers(smtp=True, wake_sender=lambda: None)
    await work.apply(handlers.on_user_registered, registered("u1", "ann@example.test"))
    await work.apply(handlers.on_order_outcome, confirmed("o1", "u1"))

    await work.apply(handlers.on_ticket_issued, issued("t1", "u1"))

    welcome, confirmation, ticket = await work.mails()
    assert (welcome.ticket_qr, confirmation.ticket_qr) == (None, None)
    assert ticket.recipient == "ann@example.test"
    assert ticket.subject == "Your ticket: seat main-D-1"
    assert "signed.code.of-t1" in ticket.body
    assert ticket.ticket_qr == TicketQr("t1", "signed.code.of-t1")
    assert (ticket.ticket_qr.filename, ticket.ticket_qr.content_type) == (
        "ticket-t1.png",
        "image/png",
    )


class RecordingSender:
    def __init__(self, *, refuse: str | None = None) -> None:
        self.sent: list[str] = []
        self._refuse = refuse

    async def send(self, mail: Mail) -> None:
        if mail.recipient == self._refuse:
            raise RuntimeError("refused")
        self.sent.append(mail.recipient)


async def test_the_dispatcher_sends_the_queue_oldest_first_and_keeps_what_failed_queued(
    tmp_path: Path,
) -> None:
    db = Database(sqlite_url(tmp_path / "notifications.db"), store.metadata)
    await db.create_tables()
    try:
        work = SqliteWork(db)
        handlers = NotificationHandlers(smtp=True, wake_sender=lambda: None)
        for order_id, customer in [("o1", "a@x.test"), ("o2", "b@x.test"), ("o3", "c@x.test")]:
            await work.apply(handlers.on_order_outcome, confirmed(order_id, customer))
        sender = RecordingSender(refuse="b@x.test")

        await MailDispatcher(db, sender).step()

        assert sender.sent == ["a@x.test"]
        assert [(m[3], m[5], m[6]) for m in await work.messages()] == [
            ("a@x.test", store.SENT, True),
            ("b@x.test", store.QUEUED, False),
            ("c@x.test", store.QUEUED, False),
        ]
    finally:
        await db.dispose()


async def test_a_whole_refund_is_mailed_to_its_buyer_and_a_payout_to_the_stores_seller(
    work: Work,
) -> None:
    handlers = mailbox()
    await work.apply(handlers.on_user_registered, registered("u1", "ann@example.test"))
    await work.apply(handlers.on_user_registered, registered("s1", "sam@example.test"))

    refund = {"order_id": "o1", "payment_id": "p1", "currency": "EUR", "customer_id": "u1"}
    await work.apply(
        handlers.on_refund_issued, payments.RefundIssued(amount=Decimal("9.50"), **refund)
    )
    # A cancelled ticket's price: its buyer was told when the ticket was cancelled.
    ticket = payments.RefundIssued(amount=Decimal("2.00"), ticket_id="t1", **refund)
    await work.apply(handlers.on_refund_issued, ticket)
    await work.apply(
        handlers.on_payout_sent,
        payments.PayoutSent(
            payout_id="po1",
            store_id="shop",
            amount=Decimal("20.00"),
            currency="EUR",
            seller_id="s1",
        ),
    )
    await work.apply(
        handlers.on_payout_sent,
        payments.PayoutSent(payout_id="po2", store_id="demo", amount=Decimal(1), currency="EUR"),
    )

    sent = [(m[0], m[2], m[3], m[4]) for m in (await work.messages())[2:]]
    assert sent == [
        ("u1", "RefundIssued", "ann@example.test", "Order o1 refunded"),
        ("s1", "PayoutSent", "sam@example.test", "Payout of 20.00 EUR sent"),
    ]
    assert "9.50 EUR" in (await work.mails())[2].body
