"""A service hears NOTIFY from other processes (`Database.listen`: the outbox relay's wake-ups,
order changes for long polls on another replica, seat map changes) across a restart of
PostgreSQL: the listening connection it loses is opened again and listens again, and it is told
once that notifications may have been missed meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData, text

from agora.messaging import Database
from agora.messaging.faults import transient_fault
from agora.services.orders.changes import OrderChanges
from own_postgres import OwnPostgres, own_postgres

__all__ = ["own_postgres"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOTIFY = text("SELECT pg_notify(:channel, :payload)")


@pytest.fixture
async def databases(own_postgres: OwnPostgres) -> AsyncIterator[tuple[Database, Database]]:
    listener, sender = (
        Database(own_postgres.url(), MetaData()),
        Database(own_postgres.url(), MetaData()),
    )
    yield listener, sender
    await listener.dispose()
    await sender.dispose()


async def notify_until_heard(sender: Database, heard: asyncio.Queue[str], payload: str) -> None:
    """NOTIFY `payload` until the listener hears it (the sender's pooled connection may have
    been ended too: that try is made again)."""
    async with asyncio.timeout(30):
        while True:
            try:
                async with sender.write() as conn:
                    await conn.execute(NOTIFY, {"channel": "changes", "payload": payload})
            except Exception as error:
                if not transient_fault(error):
                    raise
            try:
                assert await asyncio.wait_for(heard.get(), timeout=0.5) == payload
                return
            except TimeoutError:
                continue


async def test_a_listener_hears_notifications_after_a_restart(
    own_postgres: OwnPostgres, databases: tuple[Database, Database]
) -> None:
    listener, sender = databases
    heard: asyncio.Queue[str] = asyncio.Queue()
    back = asyncio.Event()
    missed: list[None] = []

    def told_missed() -> None:
        missed.append(None)
        back.set()

    await listener.listen("changes", heard.put_nowait, missed=told_missed)
    await notify_until_heard(sender, heard, "before")
    assert missed == []

    await asyncio.to_thread(own_postgres.restart)
    await asyncio.wait_for(back.wait(), timeout=30)
    await notify_until_heard(sender, heard, "after")
    assert len(missed) == 1


async def test_readers_waiting_for_an_order_re_read_it_once_listening_again(
    own_postgres: OwnPostgres, databases: tuple[Database, Database]
) -> None:
    """A reader of `Prefer: wait` on this replica may have missed the NOTIFY of another
    replica's commit while the connection was down: it is woken to read its order again."""
    listener, _ = databases
    changes = OrderChanges()
    await changes.listen(listener)
    async with changes.subscribe("order-1") as woken:
        await asyncio.to_thread(own_postgres.restart)
        channel, _ = await asyncio.wait_for(anext(woken), timeout=30)
    assert channel == "order:order-1"
