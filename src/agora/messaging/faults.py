"""Transient faults: an error that says a dependency (the database, the log, Redis, a peer over the
network) did not answer, not that the work is wrong. The same work succeeds once it answers
again, so whoever retries work (the consumer runner, background loops) waits such a fault out:
it counts no attempt, dead-letters nothing, and reports itself unhealthy until it passes.

`transient_fault` is the one place that tells them apart; `DependencyHealth` is how a component
says so (readiness, a gauge, one log line per change of state); `Backoff` spaces the tries.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import random
import sqlite3
import time
from collections.abc import Iterator
from types import TracebackType

from aiokafka.errors import BrokerNotAvailableError, KafkaError, KafkaTimeoutError
from prometheus_client import Gauge
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from agora.messaging.sql import LockTimeout

__all__ = [
    "Backoff",
    "DependencyHealth",
    "Outage",
    "PermanentError",
    "is_transient",
    "transient_fault",
]

logger = logging.getLogger(__name__)

DATABASE = "database"
LOG = "log"
REDIS = "redis"
NETWORK = "network"
DISK = "disk"

TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout, NOWAIT)
        "57014",  # query_canceled (statement_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "53300",  # too_many_connections
    }
)
"""PostgreSQL's SQLSTATEs of a fault that retrying the same transaction outlives; besides these,
every code of class 08 (connection exception)."""

_SOCKET_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)

_SQLITE_LOCKED = ("database is locked", "database table is locked")

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_POSTGRES_DISK_FULL = "53100"  # disk_full: the server could not extend a file

# Where an error was raised says which dependency failed: a bare ConnectionRefusedError raised
# while asyncpg connects is the database's, while Kafka's client raised it is the log's. In
# order of precedence: a publish to the log fails inside a transaction of the database.
_LIBRARIES = (
    ("agora.messaging.backends", LOG),
    ("aiokafka", LOG),
    ("redis", REDIS),
    ("agora.shared", REDIS),
    ("asyncpg", DATABASE),
    ("sqlalchemy", DATABASE),
    ("agora.messaging.sql", DATABASE),
    ("agora.messaging.sqlite_inline", DATABASE),
)


class PermanentError(Exception):
    """A handler's verdict that retrying this event cannot succeed: dead-letter it at once."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from or while handling (SQLAlchemy wraps the driver's
    error, which may wrap the socket's), each once."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        if current.__context__ is not None and not current.__suppress_context__:
            pending.append(current.__context__)


def _is_disk_fault(error: BaseException) -> bool:
    """A disk is full (SQLite's SQLITE_FULL, ENOSPC, a quota, PostgreSQL's disk_full) or failed
    a read or a write (SQLITE_IOERR): whichever file it was, no work of ours is to blame."""
    if getattr(error, "sqlstate", None) == _POSTGRES_DISK_FULL:
        return True
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
    return isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, LockTimeout | DisconnectionError):
        return True
    if _is_disk_fault(error):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, InterfaceError):
        # The driver's interface failed (a closed connection), unless it refused the
        # arguments it was given: asyncpg's argument errors are InterfaceErrors and ValueErrors.
        return not any(isinstance(e, ValueError | TypeError) for e in _chain(error))
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and (sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] == "08"):
        return True
    if isinstance(error, sqlite3.OperationalError | OperationalError):
        text = str(error).lower()
        if any(phrase in text for phrase in _SQLITE_LOCKED):
            return True
        code = getattr(error, "sqlite_errorcode", None)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return True
    if isinstance(error, KafkaError):
        return bool(error.retriable) or isinstance(
            error, KafkaTimeoutError | BrokerNotAvailableError
        )
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return isinstance(error, OSError) and error.errno in _SOCKET_ERRNOS


def _dependency(error: BaseException) -> str:
    """The dependency the chain of `error` names, by the modules of its errors' types and of
    the frames they passed through (the log's and Redis's clients before the database's); the
    disk, whoever wrote to it, when it is full or failing."""
    if any(_is_disk_fault(current) for current in _chain(error)):
        return DISK
    modules: set[str] = set()
    for current in _chain(error):
        modules.add(type(current).__module__)
        tb: TracebackType | None = current.__traceback__
        while tb is not None:
            modules.add(str(tb.tb_frame.f_globals.get("__name__", "")))
            tb = tb.tb_next
    for prefix, dependency in _LIBRARIES:
        if any(module.startswith(prefix) for module in modules):
            return dependency
    if any(isinstance(e, sqlite3.Error) for e in _chain(error)):
        return DATABASE
    return NETWORK


def transient_fault(error: BaseException) -> str | None:
    """The dependency that failed (`"database"`, `"log"`, `"redis"`, `"network"` or `"disk"`)
    when `error` is a transient fault, else None (the work itself failed: a handler's bug, bad
    data).

    Transient: connections refused, reset or closed, timeouts, PostgreSQL serialization failures,
    deadlocks, lock timeouts, shutdowns and restarts (and class 08), SQLite's "database is
    locked", a full or failing disk (SQLite's SQLITE_FULL and SQLITE_IOERR, ENOSPC, EDQUOT,
    PostgreSQL's disk_full: freeing space is the cure, not a dead letter), SQLAlchemy's
    invalidated connections, Kafka's retriable errors and timeouts, Redis's connection errors
    and timeouts; anywhere in the chain of causes. A handler's `PermanentError` is never
    transient, whatever it was raised from."""
    if isinstance(error, PermanentError):
        return None
    if any(_is_transient_one(current) for current in _chain(error)):
        return _dependency(error)
    return None


def is_transient(error: BaseException) -> bool:
    return transient_fault(error) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries at a dependency that does not answer: capped exponential with full
    jitter (drawn between 0 and `first * 2**(n-1)`, at most `cap`), so that the members and
    replicas that failed together do not come back in step."""

    first: float = 0.05
    cap: float = 5.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` tries in a row failed (1 or more)."""
        ceiling = min(self.cap, self.first * 2.0 ** min(max(failures, 1) - 1, 64))
        return random.uniform(0, ceiling)


@dataclasses.dataclass(slots=True)
class Outage:
    dependency: str
    error: str
    since: float  # time.time()
    started: float  # time.monotonic()


class DependencyHealth:
    """Whether one component (a consumer group, a background loop) reaches its dependencies.

    `down` when a try failed with a transient fault, `up` when a try succeeded. The first `down`
    of a dependency logs a warning with the error and the first `up` after it logs how long it
    lasted: one line per change of state, however many tries in between. The gauge (if given),
    labelled `dependency` and `component`, is 0 while down, 1 once back."""

    def __init__(self, component: str, gauge: Gauge | None = None) -> None:
        self.component = component
        self._gauge = gauge
        self.outages: dict[str, Outage] = {}

    @property
    def healthy(self) -> bool:
        return not self.outages

    def down(self, dependency: str, error: BaseException) -> None:
        if dependency in self.outages:
            return
        described = f"{type(error).__name__}: {error}"[:500]
        self.outages[dependency] = Outage(dependency, described, time.time(), time.monotonic())
        logger.warning(
            "%s: %s unavailable, pausing until it answers: %s",
            self.component,
            dependency,
            described,
        )
        if self._gauge is not None:
            self._gauge.labels(dependency, self.component).set(0)

    def up(self, dependency: str | None = None) -> None:
        """Every dependency answered (or the one named)."""
        if not self.outages:
            return
        names = list(self.outages) if dependency is None else [dependency]
        for name in names:
            outage = self.outages.pop(name, None)
            if outage is None:
                continue
            logger.info(
                "%s: %s available again after %.1f s",
                self.component,
                name,
                time.monotonic() - outage.started,
            )
            if self._gauge is not None:
                self._gauge.labels(name, self.component).set(1)
