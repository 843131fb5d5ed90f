"""How notifications' handlers and mail dispatcher change their rows: the repositories of one
transaction. Tests hold the handlers to them with in-memory twins."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork
from agora.services.notifications.mail import Mail, TicketQr
from agora.services.notifications.store import QUEUED, SENT, messages, user_addresses

__all__ = [
    "AddressesRepository",
    "MessagesRepository",
    "NewMessage",
    "NotificationsUnitOfWork",
    "QueuedMail",
    "mail_of",
]


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    """A message as a handler writes it: `status` QUEUED for the dispatcher to send, or
    DELIVERED_LOCALLY (sent at `created_at`) into the local mailbox."""

    id: str
    event_id: str
    customer_id: str
    order_id: str | None
    kind: str
    mail: Mail
    status: str
    created_at: datetime
    sent_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedMail:
    message_id: str
    mail: Mail


class AddressesRepository:
    """The addresses of registered users, in the transaction of `conn`."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def address_of(self, user_id: str) -> str | None:
        """The address `user_id` registered with; None if it names no registered user."""
        address: str | None = await self._conn.scalar(ADDRESS_OF, {"user": user_id})
        return address

    async def remember(self, user_id: str, email: str, at: datetime) -> bool:
        """Keep `email` as the address of `user_id`; False (and nothing changed) if the user
        has one already: the first registration's address stays."""
        if await self.address_of(user_id) is not None:
            return False
        await self._conn.execute(
            REMEMBER_ADDRESS, {"user_id": user_id, "email": email, "registered_at": at}
        )
        return True


class MessagesRepository:
    """Every message, in the transaction of `conn`."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, message: NewMessage) -> None:
        """Write `message`. At most one per event: a second of the same `event_id` is refused
        by the table (the consumer's inbox skips redeliveries before that)."""
        qr = message.mail.ticket_qr
        await self._conn.execute(
            NEW_MESSAGE,
            {
                "id": message.id,
                "event_id": message.event_id,
                "customer_id": message.customer_id,
                "order_id": message.order_id,
                "kind": message.kind,
                "recipient": message.mail.recipient,
                "subject": message.mail.subject,
                "body": message.mail.body,
                "ticket_id": qr.ticket_id if qr else None,
                "ticket_code": qr.code if qr else None,
                "status": message.status,
                "created_at": message.created_at,
                "sent_at": message.sent_at,
            },
        )

    async def take_queued(self, limit: int) -> list[QueuedMail]:
        """Up to `limit` queued messages, oldest first, locked until the transaction ends: a
        replica's dispatcher taking messages meanwhile skips them (on PostgreSQL)."""
        m = messages.c
        rows = await self._conn.execute(
            select(m.id, m.recipient, m.subject, m.body, m.ticket_id, m.ticket_code)
            .where(m.status == QUEUED)
            .order_by(m.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [QueuedMail(row.id, mail_of(row)) for row in rows]

    async def mark_sent(self, message_ids: Sequence[str], at: datetime) -> None:
        """The messages were handed to the mail server at `at`."""
        await self._conn.execute(
            update(messages).where(messages.c.id.in_(message_ids)).values(status=SENT, sent_at=at)
        )


def mail_of(row: Row[*tuple[Any, ...]]) -> Mail:
    """The mail a row of `messages` holds (a row of at least the columns `take_queued` reads)."""
    qr = TicketQr(row.ticket_id, row.ticket_code) if row.ticket_code is not None else None
    return Mail(row.recipient, row.subject, row.body, qr)


class NotificationsUnitOfWork(UnitOfWork):
    @property
    def addresses(self) -> AddressesRepository:
        return AddressesRepository(self.conn)

    @property
    def messages(self) -> MessagesRepository:
        return MessagesRepository(self.conn)


ADDRESS_OF = select(user_addresses.c.email).where(user_addresses.c.user_id == bindparam("user"))
REMEMBER_ADDRESS = insert(user_addresses)
NEW_MESSAGE = insert(messages)
