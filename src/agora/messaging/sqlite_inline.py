"""SQLite for the event loop: the stdlib driver behind the asyncio interface SQLAlchemy's
aiosqlite dialect expects, called inline instead of through a thread per connection.

Why: with a thread per connection every statement is two hops between the event loop and the
thread, and under load each hop waits its turn in a busy loop, while the transaction holds
SQLite's only write lock. A statement on a local WAL database takes tens of microseconds, less
than one hop, so it is cheaper to run it where it is awaited. The price: a statement that waits
for a lock held by *another process* (SQLite's busy timeout) holds up the event loop meanwhile;
within one process writers queue on an asyncio lock first (see `sql.Database`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

__all__ = ["BUSY_TIMEOUT_MS", "InlineConnection", "connect", "open_sqlite"]

BUSY_TIMEOUT_MS = 30_000


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Self:
        self._cursor.execute(operation, parameters)
        return self

    async def executemany(self, operation: str, parameters: Iterable[Sequence[Any]]) -> Self:
        self._cursor.executemany(operation, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._connection.cursor())

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        return await self.cursor().execute(operation, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._connection.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._connection.commit()

    async def rollback(self) -> None:
        self._connection.rollback()

    async def close(self) -> None:
        self._connection.close()

    def stop(self) -> None:
        self._connection.close()


def open_sqlite(path: Path | str) -> sqlite3.Connection:
    """A connection as every Agora SQLite connection is made: autocommit mode (transactions are
    begun explicitly, see `sql.py`), WAL, a busy timeout."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only power loss may drop the last commits.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


async def connect(path: Path | str) -> InlineConnection:
    return InlineConnection(open_sqlite(path))
