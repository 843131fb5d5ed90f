"""The mail dispatcher against a real SMTP server (aiosmtpd) that is down, then up: it backs off
with growing waits, says so in one line per attempt, and delivers once the server is back. And
what arrives: a ticket's email with its QR code, every other email as plain text."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import itertools
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio
import segno
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts import orders, ticketing
from agora.messaging import BackgroundLoop, Database, Envelope, Event, new_id, utcnow
from agora.messaging.sql import sqlite_url
from agora.qr import qr_image
from agora.runtime.supervisor import LOOPBACK, free_port
from agora.services.notifications.handlers import NotificationHandlers
from agora.services.notifications.mail import Mail, SmtpSender, SmtpSettings
from agora.services.notifications.repository import AddressesRepository, MessagesRepository
from agora.services.notifications.store import QUEUED, SENT, messages, metadata
from agora.services.notifications.workers import Backoff, MailDispatcher

HEALTH_LOG = "agora.messaging.faults"
DISPATCHER_LOG = "agora.services.notifications.workers"


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:  # noqa: N802
        self.recipients.extend(envelope.rcpt_tos)
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


class CountingSender:
    """The real SMTP sender, counting the attempts made through it."""

    def __init__(self, sender: SmtpSender) -> None:
        self._sender = sender
        self.attempts: list[float] = []

    async def send(self, mail: Mail) -> None:
        self.attempts.append(time.monotonic())
        await self._sender.send(mail)


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(sqlite_url(tmp_path / "notifications.db"), metadata)
    await database.create_tables()
    yield database
    await database.dispose()


async def queue_message(db: Database, recipient: str) -> str:
    message_id = new_id()
    async with db.write() as conn:
        await conn.execute(
            insert(messages).values(
                id=message_id,
                event_id=new_id(),
                customer_id=recipient,
                order_id=None,
                kind="Test",
                recipient=recipient,
                subject="Hello",
                body="Hello again.",
                status=QUEUED,
                created_at=utcnow(),
            )
        )
    return message_id


async def poll(condition: object, *, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    for failures in range(1, 80):
        ceiling = min(30.0, 2.0 ** (failures - 1))
        delays = [backoff.delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (failures, delays)
    assert len({backoff.delay(3) for _ in range(20)}) > 1  # jittered, not in step


async def test_an_unreachable_server_is_retried_with_growing_waits_until_it_is_back(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port(LOOPBACK)  # nothing listens on it yet: connections are refused
    sender = CountingSender(SmtpSender(SmtpSettings(LOOPBACK, port, timeout=5)))
    dispatcher = MailDispatcher(db, sender, backoff=Backoff(first=0.4, cap=1.6))
    loop = BackgroundLoop("mail-dispatcher", dispatcher.step, idle=5.0)
    message_id = await queue_message(db, "dana@example.test")
    running = asyncio.create_task(loop.run())
    inbox = Inbox()
    controller = Controller(inbox, hostname=LOOPBACK, port=port)
    started = False
    try:
        await poll(lambda: len(sender.attempts) >= 5, what="five attempts", timeout=30)
        for _ in range(3):
            loop.wake()  # as a newly queued message does: no attempt before the wait is over
        attempts = len(sender.attempts)

        gaps = [later - earlier for earlier, later in itertools.pairwise(sender.attempts)]
        # Waits drawn from [0.2, 0.4], [0.4, 0.8], [0.8, 1.6], then [0.8, 1.6] (the cap).
        assert gaps[0] >= 0.2
        assert gaps[1] >= 0.4
        assert gaps[2] >= 0.8 > gaps[0]
        assert gaps[3] >= 0.8
        assert max(gaps) < 1.6 + 1.0  # the cap holds (with room for a busy machine)

        # One line when the server went, however many attempts since: not one per attempt.
        changes = [r for r in caplog.records if r.name == HEALTH_LOG]
        assert len(changes) == 1, [r.getMessage() for r in changes]
        assert changes[0].levelno == logging.WARNING
        assert f"{LOOPBACK}:{port}" in changes[0].getMessage()
        assert changes[0].exc_info is None  # no traceback for an unreachable server
        assert not [r for r in caplog.records if r.name == DISPATCHER_LOG]
        assert not dispatcher.health.healthy
        assert not [r for r in caplog.records if r.exc_info]
        # the wake-ups tried nothing: at most the attempt that was due has run since
        assert len(sender.attempts) <= attempts + 1

        controller.start()  # the server is back
        started = True
        await poll(lambda: inbox.recipients, what="the message delivered")
        assert inbox.recipients == ["dana@example.test"]
        # The server has the message before the dispatcher records it sent (and says the
        # server is back): wait for the record.
        deadline = time.monotonic() + 20
        while True:
            async with db.read() as conn:
                status = await conn.scalar(
                    select(messages.c.status).where(messages.c.id == message_id)
                )
            if status == SENT or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert status == SENT
        back = [r.getMessage() for r in caplog.records if r.name == HEALTH_LOG][1:]
        assert len(back) == 1, back
        assert "mail available again after" in back[0]
        assert dispatcher.health.healthy
    finally:
        loop.stop()
        await asyncio.wait_for(running, 10)
        if started:
            controller.stop()


class _Unit:
    """What the handlers use of a unit of work, over the real repositories of `conn`."""

    def __init__(self, conn: AsyncConnection, cause: Envelope) -> None:
        self.addresses = AddressesRepository(conn)
        self.messages = MessagesRepository(conn)
        self.cause = cause

    def after_commit(self, callback: Callable[[], None]) -> None:
        pass  # the test steps the dispatcher itself


async def handle(db: Database, handler: object, event: Event) -> None:
    assert callable(handler)
    async with db.write() as conn:
        await handler(event, _Unit(conn, Envelope.wrap(event, source="test")))


def png_size(png: bytes) -> tuple[int, int]:
    """The width and height of `png`, once every chunk's CRC is checked and IHDR comes first
    and IEND last (what a PNG reader checks before it draws anything)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    at, kinds = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[:8])
        at += 12 + length
    assert (kinds[0], kinds[-1], at) == (b"IHDR", b"IEND", len(png))
    return width, height


async def test_a_ticket_email_arrives_multipart_with_its_qr_code_and_others_as_text(
    db: Database,
) -> None:
    inbox = Inbox()
    port = free_port(LOOPBACK)
    controller = Controller(inbox, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        handlers = NotificationHandlers(smtp=True, wake_sender=lambda: None)
        ticket = ticketing.TicketIssued(
            ticket_id="0193a1b2-0000-7000-8000-00000000000a",
            order_id="o1",
            customer_id="ann@example.test",
            event_id="e1",
            session_id="s1",
            category="stalls",
            seat_id="main-D-1",
            code="eyJhbGciOiJFZERTQSJ9.eyJ0aWQiOiIwMTkzYTFiMiJ9.c2lnbmVkIGJ5IHRpY2tldGluZw",
        )
        await handle(db, handlers.on_ticket_issued, ticket)
        confirmed = orders.OrderConfirmed(
            order_id="o1", customer_id="bob@example.test", total=Decimal("9.50"), currency="EUR"
        )
        await handle(db, handlers.on_order_outcome, confirmed)

        await MailDispatcher(db, SmtpSender(SmtpSettings(LOOPBACK, port, timeout=5))).step()
        await poll(lambda: len(inbox.messages) == 2, what="both messages delivered")
    finally:
        controller.stop()

    mailed, plain = sorted(inbox.messages, key=lambda m: m["To"] != "ann@example.test")
    assert mailed.get_content_type() == "multipart/mixed"
    text = mailed.get_body(("plain",))
    html = mailed.get_body(("html",))
    assert text is not None
    assert ticket.code in text.get_content()
    assert html is not None
    (inline,) = (
        part
        for part in mailed.walk()
        if part.get_content_type() == "image/png" and part.get_content_disposition() == "inline"
    )
    content_id = inline["Content-ID"].strip("<>")
    assert f'src="cid:{content_id}"' in html.get_content()
    (attached,) = mailed.iter_attachments()
    assert attached.get_content_type() == "image/png"
    assert attached.get_filename() == f"ticket-{ticket.ticket_id}.png"

    # No QR reader among our dependencies: the image must be exactly segno's drawing of the
    # code, the one the ticket's QR route serves.
    drawn = io.BytesIO()
    segno.make(ticket.code, error="m").save(drawn, kind="png", scale=4, border=4)
    assert attached.get_content() == inline.get_content() == drawn.getvalue()
    assert drawn.getvalue() == qr_image(ticket.code, "png")
    width, height = png_size(attached.get_content())
    assert width == height
    assert 100 <= width <= 1000  # a code of ~110 bytes at 4 pixels a module, quiet zone included

    assert plain["To"] == "bob@example.test"
    assert not plain.is_multipart()
    assert plain.get_content_type() == "text/plain"
    assert (
        plain.get_content().rstrip()
        == "Thank you. Your order o1 is confirmed; 9.50 EUR was charged."
    )
