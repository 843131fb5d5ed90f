"""`transient_fault`: a dependency that did not answer is told from a handler's failure, with the
errors the real clients raise (refused connections are made to a port nothing listens on)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Column, Integer, MetaData, Table, Text, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from agora.messaging import (
    Backoff,
    Database,
    DependencyHealth,
    LockTimeout,
    MessagingMetrics,
    PermanentError,
    RetryPolicy,
    sqlite_url,
    transient_fault,
)
from agora.runtime.supervisor import LOOPBACK, free_port
from agora.web import dependency_unavailable


def raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    """`error` as it is caught: raised (with a traceback), from `cause` if given."""
    try:
        if cause is None:
            raise error
        raise error from cause
    except BaseException as caught:
        return caught


def raise_while_handling(error: Exception, *, suppress: bool) -> None:
    try:
        raise error
    except Exception:
        if suppress:
            raise RuntimeError("while waiting") from None
        raise RuntimeError("while waiting")  # noqa: B904


async def test_a_database_that_refuses_connections_is_transient() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://agora@{LOOPBACK}:{free_port(LOOPBACK)}/x")
    with pytest.raises(ConnectionRefusedError, match="Connect call failed") as refused:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    await engine.dispose()
    assert transient_fault(refused.value) == "database"


async def test_the_driver_refusing_a_connection_is_transient() -> None:
    with pytest.raises(ConnectionRefusedError, match="Connect call failed") as refused:
        await asyncpg.connect(host=LOOPBACK, port=free_port(LOOPBACK), timeout=5)
    assert transient_fault(refused.value) == "database"


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_postgresql_faults_are_transient_also_wrapped_by_sqlalchemy(error: Exception) -> None:
    assert transient_fault(raised(error)) == "database"
    wrapped = raised(DBAPIError("UPDATE stock SET ...", {}, error), cause=error)
    assert transient_fault(wrapped) == "database"


def test_a_lost_connection_seen_by_sqlalchemy_is_transient() -> None:
    closed = asyncpg.InterfaceError("connection is closed")
    invalidated = DBAPIError("SELECT 1", {}, closed, connection_invalidated=True)
    assert transient_fault(raised(invalidated, cause=closed)) == "database"
    assert transient_fault(raised(InterfaceError("SELECT 1", {}, closed), cause=closed))
    assert transient_fault(raised(LockTimeout("lock timeout"))) == "database"


def test_an_argument_the_driver_refuses_is_not_transient() -> None:
    bad = asyncpg.exceptions._base.DataError("invalid input for query argument $1")
    assert isinstance(bad, asyncpg.InterfaceError)
    assert transient_fault(raised(InterfaceError("INSERT", {}, bad), cause=bad)) is None


def test_sqlite_locked_by_another_connection_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="database is locked") as locked:
        waiter.execute("INSERT INTO t VALUES (1)")
    holder.close()
    waiter.close()
    assert transient_fault(locked.value) == "database"
    wrapped = raised(OperationalError("INSERT", {}, locked.value), cause=locked.value)
    assert transient_fault(wrapped) == "database"


def no_space_left() -> OSError:
    """The kernel's ENOSPC, from the device that is always full."""
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError, match="No space left") as refused:
            os.write(fd, b"x")
    finally:
        os.close(fd)
    return refused.value


async def insert_until_full(db: Database, table: Table) -> None:
    async with db.write() as conn:
        # At most 8 pages: the database cannot grow, as on a full disk.
        await conn.execute(text("PRAGMA max_page_count = 8"))
        for n in range(100):
            await conn.execute(table.insert().values(n=n, s="x" * 4000))


def append_until_full(log: sqlite3.Connection) -> None:
    log.execute("PRAGMA max_page_count = 4")
    for _ in range(100):
        log.execute("INSERT INTO records VALUES (?)", (b"x" * 4000,))


async def test_a_full_disk_is_transient_whoever_wrote(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("n", Integer, primary_key=True), Column("s", Text))
    db = Database(sqlite_url(tmp_path / "full.db"), metadata)
    await db.create_tables()
    with pytest.raises(OperationalError, match="database or disk is full") as full:
        await insert_until_full(db, table)
    await db.dispose()
    assert transient_fault(full.value) == "disk"
    # The driver's own, as the embedded log meets it.
    log = sqlite3.connect(tmp_path / "bus.db", isolation_level=None)
    log.execute("CREATE TABLE records (value BLOB)")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as log_full:
        append_until_full(log)
    log.close()
    assert transient_fault(log_full.value) == "disk"
    assert transient_fault(no_space_left()) == "disk"


def test_a_postgresql_server_out_of_disk_is_a_fault_of_the_disk() -> None:
    full = asyncpg.DiskFullError('could not extend file "base/16384/16385": No space left')
    assert transient_fault(raised(full)) == "disk"
    wrapped = raised(DBAPIError("INSERT INTO orders ...", {}, full), cause=full)
    assert transient_fault(wrapped) == "disk"


def test_a_full_disk_answers_507_with_retry_after() -> None:
    problem = dependency_unavailable(no_space_left())
    assert problem is not None
    assert (problem.status, problem.slug) == (507, "insufficient-storage")
    assert int(problem.headers["Retry-After"]) > 0


async def test_a_constraint_violation_is_the_work_s_own_failure(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("n", Integer, primary_key=True))
    db = Database(sqlite_url(tmp_path / "t.db"), metadata)
    await db.create_tables()
    async with db.write() as conn:
        await conn.execute(table.insert().values(n=1))
    with pytest.raises(IntegrityError) as duplicate:
        async with db.write() as conn:
            await conn.execute(table.insert().values(n=1))
    await db.dispose()
    assert transient_fault(duplicate.value) is None
    assert transient_fault(raised(asyncpg.UniqueViolationError("duplicate key"))) is None


async def test_a_broker_that_is_away_is_transient() -> None:
    producer = AIOKafkaProducer(bootstrap_servers=f"{LOOPBACK}:{free_port(LOOPBACK)}")
    with pytest.raises(KafkaConnectionError) as away:
        await producer.start()
    await producer.stop()
    assert transient_fault(away.value) == "log"
    for error in (RequestTimedOutError(), NotLeaderForPartitionError(), KafkaTimeoutError()):
        assert transient_fault(raised(error)) == "log"
    assert transient_fault(raised(RecordTooLargeError())) is None


async def test_redis_that_is_away_is_transient() -> None:
    redis = Redis.from_url(f"redis://{LOOPBACK}:{free_port(LOOPBACK)}/0")
    with pytest.raises(RedisConnectionError, match="Connect call failed") as away:
        await redis.ping()
    await redis.aclose()
    assert transient_fault(away.value) == "redis"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a handler's bug"),
        ValueError("bad data"),
        KeyError("missing"),
        AssertionError("broken invariant"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_handler_s_failure_is_not_transient(error: Exception) -> None:
    assert transient_fault(raised(error)) is None
    assert not RetryPolicy().is_transient(error)


def test_a_permanent_verdict_wins_over_its_cause() -> None:
    verdict = raised(PermanentError("never"), cause=ConnectionResetError())
    assert transient_fault(verdict) is None


def test_a_fault_anywhere_in_the_chain_counts() -> None:
    """A handler that caught the driver's error and raised its own, or raised while handling."""
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert transient_fault(raised(RuntimeError("saving failed"), cause=reset)) is not None
    with pytest.raises(RuntimeError, match="while waiting") as suppressed:
        raise_while_handling(TimeoutError("timed out"), suppress=True)
    # `from None` says the context is no cause: the error is the handler's own
    assert transient_fault(suppressed.value) is None
    with pytest.raises(RuntimeError, match="while waiting") as handling:
        raise_while_handling(TimeoutError("timed out"), suppress=False)
    assert transient_fault(handling.value) is not None


def test_full_jitter_stays_within_the_capped_exponential() -> None:
    backoff = Backoff(first=0.1, cap=2.0)
    for failures in range(1, 100):
        ceiling = min(2.0, 0.1 * 2 ** (failures - 1))
        assert all(0 <= backoff.delay(failures) <= ceiling for _ in range(20))
    assert len({backoff.delay(5) for _ in range(20)}) > 1
    assert Backoff(first=0.1, cap=2.0).delay(100_000) <= 2.0


def test_health_logs_once_per_change_of_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agora.messaging.faults")
    registry = CollectorRegistry()
    health = DependencyHealth("consumer orders", MessagingMetrics(registry).dependency_up)
    refused = raised(ConnectionRefusedError(111, "Connection refused"))
    for _ in range(5):
        health.down("database", refused)
    assert not health.healthy
    labels = {"dependency": "database", "component": "consumer orders"}
    assert registry.get_sample_value("agora_dependency_up", labels) == 0
    health.up()
    health.up()
    assert health.healthy
    assert registry.get_sample_value("agora_dependency_up", labels) == 1
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == logging.WARNING
    assert "Connection refused" in lines[0][1]
    assert lines[1][0] == logging.INFO
    assert "available again after" in lines[1][1]
