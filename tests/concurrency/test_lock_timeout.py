"""Waiting for a stock row is bounded: `lock_stock` gives up with `LockTimeout` once its timeout
expires (PostgreSQL's `lock_timeout`; SQLite's busy timeout for its write lock), and the
consumer runner retries that as a transient fault, for as long as the lock is held, instead of
dead-lettering the event. The lock is held from another real connection, as a stalled
transaction of another process would hold it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select

from agora import contracts
from agora.contracts.orders import OrderLine, OrderPlaced
from agora.infra import InfraSettings
from agora.messaging import (
    ConsumerOptions,
    ConsumerRunner,
    Database,
    DeadLetter,
    Envelope,
    LockTimeout,
    MessagingMetrics,
    Record,
    RetryPolicy,
    ServicePlatform,
    list_dead_letters,
    sqlite_inline,
    sqlite_url,
)
from agora.messaging.backends.embedded import EmbeddedLog
from agora.runtime.supervisor import ensure_database
from agora.services.inventory import store
from agora.services.inventory.handlers import InventoryHandlers
from agora.services.inventory.locking import lock_stock
from agora.services.inventory.repository import InventoryUnitOfWork

DEADLINE = 30.0
"""Seconds any one wait may take before the test fails."""

TIMEOUT = 0.1
"""The lock timeout under test: short, so that a held lock makes many attempts time out."""

T = TypeVar("T")


async def poll(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not done(result := await probe()):
        assert loop.time() < deadline, f"no {what} within {DEADLINE} s (last: {result!r})"
        await asyncio.sleep(0.02)
    return result


@pytest.fixture
async def pg_url(servers: InfraSettings) -> str:
    template = servers.isolated_env("locktimeout")["AGORA_DATABASE_URL_TEMPLATE"]
    url = template.replace("{service}", "inventory")
    await ensure_database(url)
    return url


class RowLock:
    """A stock row's lock, held by a connection of its own until `release`."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @classmethod
    async def take(cls, url: str, product_id: str) -> RowLock:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await connection.execute("BEGIN")
        row = await connection.fetchrow(
            "SELECT product_id FROM stock WHERE product_id = $1 FOR UPDATE", product_id
        )
        assert row is not None, f"no stock row {product_id}"
        return cls(connection)

    async def release(self) -> None:
        if not self._connection.is_closed():
            await self._connection.close()  # ends the transaction, and with it the lock


@contextlib.asynccontextmanager
async def row_locked(url: str, product_id: str) -> AsyncIterator[RowLock]:
    lock = await RowLock.take(url, product_id)
    try:
        yield lock
    finally:
        await lock.release()


async def add_stock(db: Database, product_id: str, available: int) -> None:
    async with db.write() as conn:
        await conn.execute(
            insert(store.stock).values(product_id=product_id, available=available, reserved=0)
        )


async def stock_of(db: Database, product_id: str) -> tuple[int, int]:
    async with db.read() as conn:
        row = (
            await conn.execute(select(store.stock).where(store.stock.c.product_id == product_id))
        ).one()
    return row.available, row.reserved


@pytest.mark.postgres
async def test_lock_stock_gives_up_after_its_timeout(pg_url: str) -> None:
    db = Database(pg_url, store.metadata)
    try:
        await db.create_tables()
        await add_stock(db, "hot", 5)
        loop = asyncio.get_running_loop()
        async with row_locked(pg_url, "hot"):
            started = loop.time()
            with pytest.raises(LockTimeout):
                async with db.write() as conn:
                    await lock_stock(conn, ["hot"], timeout=TIMEOUT)
            waited = loop.time() - started
        assert TIMEOUT <= waited < DEADLINE
        async with db.write() as conn:  # free again: the same call goes through
            await lock_stock(conn, ["hot"], timeout=TIMEOUT)
    finally:
        await db.dispose()


async def test_a_write_lock_held_by_another_process_is_a_lock_timeout_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's busy timeout plays the lock timeout's part: another process holds the only
    write lock past it."""
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_MS", round(TIMEOUT * 1000))
    path = tmp_path / "inventory.db"
    db = Database(sqlite_url(path), store.metadata)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await db.create_tables()
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockTimeout):
            async with db.write() as conn:
                await lock_stock(conn, ["hot"], timeout=TIMEOUT)
        other.execute("ROLLBACK")
        await add_stock(db, "hot", 5)  # free again: writes go through
    finally:
        other.close()
        await db.dispose()


@dataclasses.dataclass
class Inventory:
    """The inventory service's consumer on PostgreSQL, fed by an embedded log: its real
    handlers and batch locking, with a short lock timeout and a quick retry policy."""

    platform: ServicePlatform
    log: EmbeddedLog
    metrics: CollectorRegistry
    retry: RetryPolicy

    def runner(self) -> ConsumerRunner:
        handlers = InventoryHandlers(dt.timedelta(minutes=15), lock_timeout=TIMEOUT)
        return self.platform.subscribe(
            handlers.table,
            lambda: self.platform.unit_of_work(InventoryUnitOfWork),
            prepare=handlers.lock_batch,
        )

    async def place(self, product_id: str, quantity: int) -> OrderPlaced:
        order = OrderPlaced(
            order_id=str(uuid.uuid4()),
            customer_id="c1",
            lines=(OrderLine(product_id=product_id, quantity=quantity, unit_price=Decimal(1)),),
            total=Decimal(quantity),
            currency="EUR",
        )
        envelope = Envelope.wrap(order, source="orders")
        await self.log.publish([Record(order.topic, order.key, envelope.to_bytes())])
        return order

    async def retries(self) -> float:
        sample = self.metrics.get_sample_value(
            "agora_handler_retries_total", {"group": "inventory"}
        )
        return sample or 0.0

    async def dead_letters(self) -> list[DeadLetter]:
        return await list_dead_letters(self.log, [OrderPlaced.topic])


@pytest.fixture
async def inventory(pg_url: str, tmp_path: Path) -> AsyncIterator[Inventory]:
    log = EmbeddedLog(tmp_path / "bus.db")
    await log.open()
    metrics = CollectorRegistry()
    retry = RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.05)
    platform = ServicePlatform(
        "inventory",
        pg_url,
        store.metadata,
        log,
        contracts.registry(),
        MessagingMetrics(metrics),
        consumer_options=ConsumerOptions(members=1, retry=retry),
    )
    try:
        await platform.db.create_tables()
        await add_stock(platform.db, "hot", 5)
        yield Inventory(platform, log, metrics, retry)
    finally:
        await platform.db.dispose()
        await log.close()


@pytest.mark.postgres
async def test_an_event_whose_lock_times_out_is_retried_until_the_lock_is_free(
    inventory: Inventory, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Held longer than all of the policy's attempts, the lock makes the event time out again
    and again; it is not dead-lettered, and once the lock is released it is applied."""
    await inventory.place("hot", 2)
    beyond_attempts = 2 * inventory.retry.attempts
    with caplog.at_level(logging.WARNING, logger="agora.messaging.runner"):
        async with row_locked(pg_url, "hot") as lock, running(inventory.runner()):
            await poll(inventory.retries, lambda n: n > beyond_attempts, "retries")
            assert await inventory.dead_letters() == []
            assert await stock_of(inventory.platform.db, "hot") == (5, 0)
            await lock.release()
            db = inventory.platform.db
            await poll(lambda: stock_of(db, "hot"), lambda s: s == (3, 2), "the hold")
    assert any("LockTimeout" in record.getMessage() for record in caplog.records)
    assert await inventory.dead_letters() == []


@pytest.mark.postgres
async def test_a_runner_stopped_while_a_lock_times_out_leaves_the_event_to_the_next(
    inventory: Inventory, pg_url: str
) -> None:
    """A lock timeout is retried without end, yet `stop()` still ends the runner; the event's
    offset stays uncommitted, so the next runner of the group applies it."""
    await inventory.place("hot", 2)
    async with row_locked(pg_url, "hot"):
        async with running(inventory.runner()):  # leaving it stops it, within the deadline
            await poll(inventory.retries, lambda n: n > 0, "a retry")
        assert await inventory.dead_letters() == []
    async with running(inventory.runner()):
        db = inventory.platform.db
        await poll(lambda: stock_of(db, "hot"), lambda s: s == (3, 2), "the hold")
    assert await inventory.dead_letters() == []


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[None]:
    """Run `runner` for the block, then stop it and wait until it has left its group."""
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        runner.stop()
        await asyncio.wait_for(task, DEADLINE)
