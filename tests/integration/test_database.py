"""`messaging.sql.Database` on PostgreSQL: reads without a transaction, pooled connections
checked before use once they have sat idle (a server that dropped them while they waited), and
statements that cannot run for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import MetaData, text
from sqlalchemy.exc import DBAPIError

from agora.infra import InfraSettings
from agora.messaging import Database
from agora.messaging.faults import transient_fault
from agora.messaging.sql import DatabaseTimeouts, without_statement_timeout
from agora.runtime.supervisor import ensure_database

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio]

DATABASE = "databasetest"


@pytest_asyncio.fixture
async def url(servers: InfraSettings) -> str:
    template = servers.isolated_env("database")["AGORA_DATABASE_URL_TEMPLATE"]
    url = template.replace("{service}", DATABASE)
    await ensure_database(url)
    return url


@pytest_asyncio.fixture
async def databases(url: str) -> AsyncIterator[Callable[..., Database]]:
    made: list[Database] = []

    def make(**options: Any) -> Database:
        made.append(Database(url, MetaData(), **options))
        return made[-1]

    yield make
    for db in made:
        await db.dispose()


async def backend_pid(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def drop_connection(url: str, pid: int) -> None:
    """What a server restart does to a pooled connection: the server ends it."""
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        deadline = asyncio.get_running_loop().time() + 10
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert asyncio.get_running_loop().time() < deadline, f"backend {pid} still there"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


async def test_each_statement_of_a_read_is_its_own_transaction(
    databases: Callable[..., Database],
) -> None:
    db = databases()
    async with db.read() as conn:
        first = await conn.scalar(text("SELECT txid_current()"))
        second = await conn.scalar(text("SELECT txid_current()"))
    async with db.write() as conn:
        third = await conn.scalar(text("SELECT txid_current()"))
        fourth = await conn.scalar(text("SELECT txid_current()"))

    assert first != second, "a read opens no transaction around its statements"
    assert third == fourth, "a write is one transaction"


async def test_an_idle_connection_the_server_dropped_is_replaced_at_checkout(
    databases: Callable[..., Database], url: str
) -> None:
    db = databases(pool_size=1, ping_after_idle=0.0)  # every pooled connection counts as idle
    pid = await backend_pid(db)
    await drop_connection(url, pid)

    assert await backend_pid(db) != pid  # no error: the ping failed, a new connection served


async def test_a_connection_used_moments_ago_is_not_pinged(
    databases: Callable[..., Database], url: str
) -> None:
    """The price of pinging only idle connections: a connection dropped within the idle window
    fails its next statement once; the pool is then replaced and the retry goes through."""
    db = databases(pool_size=1, ping_after_idle=3600.0)
    pid = await backend_pid(db)
    await drop_connection(url, pid)

    with pytest.raises(DBAPIError) as failed:
        await backend_pid(db)
    assert failed.value.connection_invalidated
    assert await backend_pid(db) != pid


async def test_a_statement_past_the_statement_timeout_is_cancelled(
    databases: Callable[..., Database],
) -> None:
    db = databases(timeouts=DatabaseTimeouts(statement=0.5))
    async with db.read() as conn:
        assert await conn.scalar(text("SHOW statement_timeout")) == "500ms"
    started = asyncio.get_running_loop().time()
    with pytest.raises(DBAPIError) as cancelled:
        async with db.read() as conn:
            await conn.execute(text("SELECT pg_sleep(5)"))
    assert asyncio.get_running_loop().time() - started < 4
    assert getattr(cancelled.value.orig, "sqlstate", None) == "57014"
    assert transient_fault(cancelled.value) == "database"  # answered 503, not 500


async def test_a_migration_may_run_past_the_statement_timeout(
    databases: Callable[..., Database],
) -> None:
    db = databases(timeouts=DatabaseTimeouts(statement=0.2))
    async with db.write() as conn:
        await without_statement_timeout(conn)
        await conn.execute(text("SELECT pg_sleep(0.5)"))
    async with db.read() as conn:  # the connection's own timeout is back after it
        assert await conn.scalar(text("SHOW statement_timeout")) == "200ms"
