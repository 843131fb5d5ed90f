"""Databases for services and the embedded log: SQLAlchemy 2 (async) over SQLite or PostgreSQL.

SQLite admits one writer at a time. Rather than let writers spin in SQLite's busy handler (which
sleeps in steps of up to 100 ms), writers of one process queue on an asyncio lock and open their
transaction with BEGIN IMMEDIATE, so a transaction never fails half-way upgrading a read lock.
Readers use plain deferred transactions and, in WAL mode, never wait for the writer. SQLite's
statements run inline on the event loop (`sqlite_inline`).

A write transaction that waited too long for a lock fails with `LockTimeout`, whichever backend
gave up: PostgreSQL's `lock_timeout` (see `set_lock_timeout`) or SQLite's busy timeout (another
process held the write lock). The wait says nothing about the work itself, so callers may retry
it as it is; the consumer runner does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
    bindparam,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from agora.messaging import sqlite_inline

__all__ = [
    "Database",
    "DatabaseTimeouts",
    "DecimalText",
    "LockTimeout",
    "UtcDateTime",
    "configure_sqlite",
    "insert_new",
    "ping_when_idle",
    "set_lock_timeout",
    "sqlite_url",
    "without_statement_timeout",
]


logger = logging.getLogger(__name__)

PING_AFTER_IDLE = 5.0
"""Seconds a PostgreSQL connection may sit in the pool before it is pinged at checkout."""

LISTEN_RETRY_FIRST = 0.1
LISTEN_RETRY_CAP = 2.0
"""Seconds between tries at opening a lost listening connection again: doubling, capped."""


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class LockTimeout(Exception):
    """A write transaction gave up waiting for a lock another transaction held, and was rolled
    back. Transient: the same work, tried again once that transaction is done, can succeed."""


LOCK_NOT_AVAILABLE = "55P03"
"""PostgreSQL's SQLSTATE when `lock_timeout` expires (or a NOWAIT lock is refused)."""

# Built once (SQLAlchemy skips building and hashing an expression per call). `SET LOCAL` takes
# no bind parameters; `set_config(..., is_local => true)` is the same and does.
_SET_LOCK_TIMEOUT = select(func.set_config("lock_timeout", bindparam("value"), True))


async def set_lock_timeout(conn: AsyncConnection, seconds: float) -> None:
    """Until `conn`'s transaction ends, a statement waits at most `seconds` for a lock; then
    the transaction fails and `Database.write` raises `LockTimeout`.

    PostgreSQL only (nothing on SQLite, where a write transaction holds the only write lock from
    its BEGIN on and the connection's busy timeout bounds the wait for it)."""
    if seconds <= 0:
        raise ValueError(f"a lock timeout must be positive (0 would mean none), got {seconds}")
    if conn.dialect.name == "postgresql":
        await conn.execute(_SET_LOCK_TIMEOUT, {"value": f"{max(1, round(seconds * 1000))}ms"})


def _is_lock_timeout(error: DBAPIError) -> bool:
    cause = error.orig
    if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return True
    return getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


@contextlib.contextmanager
def _lock_timeouts() -> Iterator[None]:
    try:
        yield
    except DBAPIError as error:
        if _is_lock_timeout(error):
            raise LockTimeout(str(error.orig)) from error
        raise


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """What bounds a PostgreSQL server that stalls us: opening a connection takes at most
    `connect` seconds; a statement runs at most `statement` seconds on the server
    (`statement_timeout`, set on every connection; then it is cancelled, SQLSTATE 57014), and
    the client gives up on an answer `statement` + `margin` seconds after asking (a server gone
    silent, whose cancel would never come). SQLite has none of these: its busy timeout bounds
    the wait for its lock."""

    connect: float = 5.0
    statement: float = 30.0
    margin: float = 5.0

    def asyncpg_arguments(self) -> dict[str, Any]:
        return {
            "timeout": self.connect,
            "command_timeout": self.statement + self.margin,
            "server_settings": {"statement_timeout": f"{max(1, round(self.statement * 1000))}"},
        }


_SET_NO_STATEMENT_TIMEOUT = select(func.set_config("statement_timeout", "0", True))


async def without_statement_timeout(conn: AsyncConnection) -> None:
    """Until `conn`'s transaction ends, its statements run as long as they take (a migration
    building an index on a large table). PostgreSQL only."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_SET_NO_STATEMENT_TIMEOUT)


class Database:
    """One service's database: an engine, its tables, and the way to open transactions."""

    def __init__(
        self,
        url: str,
        metadata: MetaData,
        *,
        pool_size: int = 16,
        ping_after_idle: float = PING_AFTER_IDLE,
        timeouts: DatabaseTimeouts | None = None,
    ) -> None:
        self.url = url
        self.metadata = metadata
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size}
        if self.is_sqlite:
            # Connections run inline (see sqlite_inline); every transaction here ends in COMMIT
            # or ROLLBACK, so a connection going back to the pool needs no reset.
            options |= {"max_overflow": 3 * pool_size, "pool_reset_on_return": None}
            path = make_url(url).database or ":memory:"
            options["async_creator"] = lambda: sqlite_inline.connect(path)
        elif make_url(url).drivername == "postgresql+asyncpg":
            options["connect_args"] = (timeouts or DatabaseTimeouts()).asyncpg_arguments()
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._name = make_url(url).database or url
        self._listener: AsyncConnection | None = None
        self._channels: list[tuple[str, Callable[[str], None], Callable[[], None]]] = []
        self._relistening: asyncio.Task[None] | None = None
        if self.is_sqlite:
            configure_sqlite(self.engine.sync_engine)
            self._reader = self.engine.execution_options(agora_read_only=True)
        else:
            ping_when_idle(self.engine.sync_engine, ping_after_idle)
            # PostgreSQL's READ COMMITTED gives every statement a snapshot of its own, inside
            # a transaction or not: reads need no BEGIN and COMMIT, two round trips saved.
            self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction: committed when the block ends, rolled back on error
        (`LockTimeout` if it waited too long for a lock)."""
        with _lock_timeouts():
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            async with self._write_lock, self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading: on SQLite one snapshot for the block (a deferred
        transaction); on PostgreSQL each statement its own (READ COMMITTED, no transaction)."""
        async with self._reader.connect() as conn:
            if self.is_sqlite:
                async with conn.begin():
                    yield conn
            else:
                yield conn

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction whose statements all see one snapshot (REPEATABLE READ on
        PostgreSQL), for reads that compare tables with each other."""
        if self.is_sqlite:
            async with self.read() as conn:
                yield conn
            return
        one_snapshot = self.engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with one_snapshot.connect() as conn, conn.begin():
            yield conn

    async def listen(
        self, channel: str, callback: Callable[[str], None], *, missed: Callable[[], None]
    ) -> None:
        """Call `callback` with the payload whenever a connection (any process) runs NOTIFY
        `channel` (and commits).

        PostgreSQL only (a no-op on SQLite, where all writers share a process). The listening
        connection stays open until `dispose`. When the server drops it (a restart, a network
        that reset it) it is opened again, tried until the server answers, and listens to every
        channel again; then `missed` is called once, since notifications sent meanwhile are
        lost: its caller catches up as if told that anything may have changed."""
        if self.is_sqlite:
            return
        self._channels.append((channel, callback, missed))
        if self._relistening is not None:
            return  # it listens to every channel once it is back
        if self._listener is None:
            self._listener = await self._open_listener()
        else:
            await self._add_listener(self._listener, channel, callback)

    async def _open_listener(self) -> AsyncConnection:
        conn = await self.engine.connect()
        try:
            for channel, callback, _ in self._channels:
                await self._add_listener(conn, channel, callback)
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            driver.add_termination_listener(self._listener_lost)
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        return conn

    @staticmethod
    async def _add_listener(
        conn: AsyncConnection, channel: str, callback: Callable[[str], None]
    ) -> None:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.add_listener(channel, lambda _conn, _pid, _channel, payload: callback(payload))

    def _listener_lost(self, _driver: object) -> None:
        if self._listener is None or self._relistening is not None:
            return  # being disposed of, or already opened again
        self._relistening = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        lost, self._listener = self._listener, None
        if lost is not None:
            with contextlib.suppress(Exception):  # the connection is dead already
                await lost.invalidate()
        logger.warning("database %s: the listening connection was lost", self._name)
        started = time.monotonic()
        failures = 0
        while True:
            try:
                listener = await self._open_listener()
                break
            except Exception as error:
                failures += 1
                delay = min(LISTEN_RETRY_CAP, LISTEN_RETRY_FIRST * 2 ** min(failures - 1, 16))
                logger.debug("database %s: listening again failed: %r", self._name, error)
                await asyncio.sleep(delay)
        self._listener = listener
        self._relistening = None
        logger.info(
            "database %s: listening again after %.1f s", self._name, time.monotonic() - started
        )
        for _, _, missed in self._channels:
            missed()

    async def dispose(self) -> None:
        relistening, self._relistening = self._relistening, None
        if relistening is not None:
            relistening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relistening
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
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


def ping_when_idle(engine: Engine, idle: float) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool more than `idle`
    seconds: they are pinged at checkout and replaced if the ping fails (SQLAlchemy's checkout
    event recipe). `pool_pre_ping` pings at every checkout, which on asyncpg is three round
    trips (BEGIN, a query, ROLLBACK) per transaction. A connection that worked moments ago
    is used as it is: if the server went away since, the statement fails, SQLAlchemy replaces
    every pooled connection, and the caller's retry (a consumer's batch, a client's request
    with its idempotency key) goes through."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["agora.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("agora.idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise DisconnectionError(f"a pooled connection failed its ping: {error}") from error


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
