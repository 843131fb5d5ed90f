"""Databases for services and the embedded log: SQLAlchemy 2 (async) over SQLite or PostgreSQL.

SQLite admits one writer at a time. Rather than let writers spin in SQLite's busy handler (which
sleeps in steps of up to 100 ms), writers of one process queue on an asyncio lock and open their
transaction with BEGIN IMMEDIATE, so a transaction never fails half-way upgrading a read lock.
Readers use plain deferred transactions and, in WAL mode, never wait for the writer. SQLite's
statements run inline on the event loop (`sqlite_inline`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Engine,
    Insert,
    MetaData,
    Numeric,
    String,
    Table,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from agora.messaging import sqlite_inline

__all__ = [
    "Database",
    "DecimalText",
    "UtcDateTime",
    "configure_sqlite",
    "insert_new",
    "sqlite_url",
]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class Database:
    """One service's database: an engine, its tables, and the way to open transactions."""

    def __init__(self, url: str, metadata: MetaData, *, pool_size: int = 16) -> None:
        self.url = url
        self.metadata = metadata
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size}
        if self.is_sqlite:
            # Connections run inline (see sqlite_inline); every transaction here ends in COMMIT
            # or ROLLBACK, so a connection going back to the pool needs no reset.
            options |= {"max_overflow": 3 * pool_size, "pool_reset_on_return": None}
        else:
            options["pool_pre_ping"] = True
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            options["async_creator"] = lambda: sqlite_inline.connect(path)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._listener: AsyncConnection | None = None
        if self.is_sqlite:
            configure_sqlite(self.engine.sync_engine)

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction: committed when the block ends, rolled back on error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(agora_read_only=True)
            async with conn.begin():
                yield conn

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback` with the payload whenever a connection (any process) runs NOTIFY
        `channel` (and commits).

        PostgreSQL only (a no-op on SQLite, where all writers share a process). The listening
        connection stays open until `dispose`."""
        if self.is_sqlite:
            return
        if self._listener is None:
            self._listener = await self.engine.connect()
        raw = await self._listener.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.add_listener(channel, lambda _conn, _pid, _channel, payload: callback(payload))

    async def dispose(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self.engine.dispose()


def insert_new(table: Table, dialect: str, returning: Column[Any] | None = None) -> Insert:
    """`INSERT … ON CONFLICT DO NOTHING` into `table` (rows whose key exists are skipped), with
    `RETURNING returning` if given, for `dialect` ("sqlite" or "postgresql"). Built once per
    table, dialect and returned column and kept in the table's `info`: SQLAlchemy then finds
    it in its compiled cache without building and hashing a new expression per call."""
    key = f"agora.insert_new.{dialect}.{returning.name if returning is not None else ''}"
    statement = table.info.get(key)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).on_conflict_do_nothing()
        if returning is not None:
            statement = statement.returning(returning)
        table.info[key] = statement
    assert isinstance(statement, Insert)
    return statement


def configure_sqlite(engine: Engine) -> None:
    """BEGIN IMMEDIATE for every transaction not marked `agora_read_only` (so that a writer
    takes the write lock before it reads anything). Connections come from
    `sqlite_inline.open_sqlite` (WAL, busy timeout)."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("agora_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, text on SQLite (which has no exact decimal)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(40))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite itself keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Agora stores UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
