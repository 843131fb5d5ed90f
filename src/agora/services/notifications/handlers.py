"""Notifications: a welcome email for every new account, an email for every order outcome."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from agora.auth import Principal, may_read
from agora.contracts import identity, orders
from agora.messaging import Database, Event, Handler, UnitOfWork, new_id, utcnow
from agora.services.notifications.mail import Mail, MailSender, MailUnavailable
from agora.services.notifications.store import (
    DELIVERED_LOCALLY,
    QUEUED,
    SENT,
    messages,
    user_addresses,
)

logger = logging.getLogger(__name__)

# Built once (SQLAlchemy skips building and hashing an expression per call).
ADDRESS_OF = select(user_addresses.c.email).where(user_addresses.c.user_id == bindparam("user"))
NEW_MESSAGE = insert(messages)


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
    def table(self) -> Mapping[type[Event], Handler[Any]]:
        return {
            identity.UserRegistered: self.on_user_registered,
            orders.OrderConfirmed: self.on_order_outcome,
            orders.OrderCancelled: self.on_order_outcome,
            orders.OrderExpired: self.on_order_outcome,
        }

    async def on_order_outcome(
        self,
        event: orders.OrderConfirmed | orders.OrderCancelled | orders.OrderExpired,
        uow: UnitOfWork,
    ) -> None:
        address = await uow.conn.scalar(ADDRESS_OF, {"user": event.customer_id})
        mail = compose(event, address or recipient_for(event.customer_id))
        await self._queue(uow, event, event.customer_id, event.order_id, mail)

    async def on_user_registered(self, event: identity.UserRegistered, uow: UnitOfWork) -> None:
        known = await uow.conn.scalar(
            select(user_addresses.c.user_id).where(user_addresses.c.user_id == event.user_id)
        )
        if known is None:
            await uow.conn.execute(
                insert(user_addresses).values(
                    user_id=event.user_id, email=event.email, registered_at=utcnow()
                )
            )
        mail = Mail(
            event.email,
            "Welcome to Agora",
            f"Your {event.role} account for {event.email} is ready. If you did not register, "
            "ignore this message.",
        )
        await self._queue(uow, event, event.user_id, None, mail)

    async def _queue(
        self, uow: UnitOfWork, event: Event, customer_id: str, order_id: str | None, mail: Mail
    ) -> None:
        assert uow.cause is not None
        now = utcnow()
        await uow.conn.execute(
            NEW_MESSAGE,
            {
                "id": new_id(),
                "event_id": uow.cause.id,
                "customer_id": customer_id,
                "order_id": order_id,
                "kind": event.type_name(),
                "recipient": mail.recipient,
                "subject": mail.subject,
                "body": mail.body,
                "status": QUEUED if self._smtp else DELIVERED_LOCALLY,
                "created_at": now,
                "sent_at": None if self._smtp else now,
            },
        )
        if self._smtp:
            uow.after_commit(self._wake_sender)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """The waits between attempts at a mail server that failed: doubling from `first` up to
    `cap` seconds, each drawn between half and all of that ("equal jitter"), so that replicas
    that failed together do not retry in step, while no wait is shorter than the one before
    until the cap is reached."""

    first: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` attempts in a row failed (1 or more)."""
        ceiling = min(self.cap, self.first * 2.0 ** min(failures - 1, 64))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class MailDispatcher:
    """Sends queued messages over SMTP, oldest first. A failed send stays queued; the next
    attempt waits as `backoff` says (wake-ups and idle ticks meanwhile try nothing), with one
    log line per failed attempt. A message is sent at least once: a crash between the send and
    the commit sends it again."""

    def __init__(
        self,
        db: Database,
        sender: MailSender,
        *,
        batch_size: int = 10,
        backoff: Backoff | None = None,
    ) -> None:
        self._db = db
        self._sender = sender
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._failures = 0
        self._retry_at = 0.0  # monotonic time before which no attempt is made

    async def step(self) -> float | None:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            return wait
        async with self._db.write() as conn:
            # Rows stay locked while they are sent: a replica's dispatcher skips them.
            queued = (
                await conn.execute(
                    select(messages.c.id, messages.c.recipient, messages.c.subject, messages.c.body)
                    .where(messages.c.status == QUEUED)
                    .order_by(messages.c.created_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            sent: list[str] = []
            failure: Exception | None = None
            for row in queued:
                try:
                    await self._sender.send(Mail(row.recipient, row.subject, row.body))
                except Exception as error:
                    failure = error
                    break
                sent.append(row.id)
            if sent:
                await conn.execute(
                    update(messages)
                    .where(messages.c.id.in_(sent))
                    .values(status=SENT, sent_at=utcnow())
                )
        # After the commit: what was sent stays marked sent.
        if failure is not None:
            return self._failed(failure, len(sent))
        if self._failures:
            logger.info("mail: sending again after %d failed attempts", self._failures)
            self._failures = 0
        return 0 if len(queued) == self._batch_size else None

    def _failed(self, failure: Exception, sent: int) -> float:
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._retry_at = time.monotonic() + delay
        # An unreachable server is an expected state: its cause in one line is all there is
        # to say. A refused message may be a defect here: that gets its traceback.
        logger.warning(
            "mail: attempt %d failed (%s%s); next attempt in %.1f s",
            self._failures,
            failure if isinstance(failure, MailUnavailable) else repr(failure),
            f", {sent} sent before it" if sent else "",
            delay,
            exc_info=None if isinstance(failure, MailUnavailable) else failure,
        )
        return delay
