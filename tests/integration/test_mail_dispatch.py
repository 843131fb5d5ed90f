"""The mail dispatcher against a real SMTP server (aiosmtpd) that is down, then up: it backs off
with growing waits, says so in one line per attempt, and delivers once the server is back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import insert, select

from agora.messaging import BackgroundLoop, Database, new_id, utcnow
from agora.messaging.sql import sqlite_url
from agora.runtime.supervisor import LOOPBACK, free_port
from agora.services.notifications.mail import Mail, SmtpSender, SmtpSettings
from agora.services.notifications.store import QUEUED, SENT, messages, metadata
from agora.services.notifications.workers import Backoff, MailDispatcher

DISPATCHER_LOG = "agora.services.notifications.workers"


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.recipients.extend(envelope.rcpt_tos)
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

        failures = [
            record
            for record in caplog.records
            if record.name == DISPATCHER_LOG and record.levelno == logging.WARNING
        ]
        assert len(failures) >= attempts - 1  # one line per attempt (the last may be running)
        assert len(failures) <= attempts
        for number, record in enumerate(failures, start=1):
            line = record.getMessage()
            assert f"attempt {number} failed" in line
            assert f"{LOOPBACK}:{port}" in line
            assert "next attempt in" in line
            assert record.exc_info is None  # no traceback for an unreachable server
        assert not [r for r in caplog.records if r.exc_info and r.name != DISPATCHER_LOG]

        controller.start()  # the server is back
        started = True
        await poll(lambda: inbox.recipients, what="the message delivered")
        assert inbox.recipients == ["dana@example.test"]
        async with db.read() as conn:
            status = await conn.scalar(select(messages.c.status).where(messages.c.id == message_id))
        assert status == SENT
        assert any("sending again after" in r.getMessage() for r in caplog.records)
    finally:
        loop.stop()
        await asyncio.wait_for(running, 10)
        if started:
            controller.stop()
