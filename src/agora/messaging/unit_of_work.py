"""The unit of work: one transaction in which a service changes its state and records the events
that change causes. Nothing is published from a handler; the outbox relay does that."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.context import current_request
from agora.messaging.envelope import Envelope, Event
from agora.messaging.outbox import outbox_channel, write_outbox
from agora.messaging.sql import Database

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """`async with uow:` opens a write transaction; leaving the block without an error writes the
    emitted events to the outbox and commits, then wakes the relay. An error rolls everything
    back: state and events alike.

    While a consumer applies an event it sets `cause`, so that what the handler emits continues
    that event's saga (correlation id) and names it (causation id). Work that is not an event's
    handler (a worker acting on a row) may name them itself: `correlation_id`, `causation_id`.
    """

    def __init__(
        self,
        db: Database,
        outbox: Table,
        *,
        source: str,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._on_commit = on_commit
        self.source = source
        self.cause: Envelope | None = None
        self.correlation_id: str | None = None
        self.causation_id: str | None = None
        self._events: list[tuple[str, Envelope]] = []
        self._superseding: dict[tuple[type[Event], str], int] = {}
        """Where the last event of each (type, key) that `supersedes` is in `_events`."""
        self._conn: AsyncConnection | None = None
        self._before_commit: list[Callable[[AsyncConnection], Awaitable[None]]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._notifications: list[tuple[str, str]] = []
        self._transaction = db.write()

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self._conn

    def emit(self, event: Event) -> Envelope:
        request = current_request()
        envelope = Envelope.wrap(
            event,
            source=self.source,
            cause=self.cause,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            request_id=request.request_id if request else None,
            actor=request.actor if request else None,
        )
        if event.supersedes:
            earlier = self._superseding.get((type(event), event.key))
            if earlier is not None:
                del self._events[earlier]  # the later value says all the earlier one did
                self._superseding = {
                    k: i - 1 if i > earlier else i for k, i in self._superseding.items()
                }
            self._superseding[(type(event), event.key)] = len(self._events)
        self._events.append((event.topic, envelope))
        return envelope

    def before_commit(self, callback: Callable[[AsyncConnection], Awaitable[None]]) -> None:
        """Await `callback(conn)` in the transaction, after the block and before the outbox
        write and the commit, when the block ended without an error; its error rolls back."""
        self._before_commit.append(callback)

    def notify(self, channel: str, payload: str = "") -> None:
        """On PostgreSQL, NOTIFY `channel` with `payload` (under 8,000 bytes) as the transaction
        commits; listeners in every process hear it then. All of a unit of work's
        notifications, the relay's wake-up among them, go in one statement. Nothing on
        SQLite, whose writers share one process."""
        self._notifications.append((channel, payload))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (to wake a worker, say)."""
        self._after_commit.append(callback)

    async def __aenter__(self) -> Self:
        self._conn = await self._transaction.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                for before in self._before_commit:
                    await before(self.conn)
            if exc is None and self._events:
                await write_outbox(self.conn, self._outbox, self._events)
                self.notify(outbox_channel(self.source))
            if exc is None and self._notifications and self.conn.dialect.name == "postgresql":
                await self.conn.execute(
                    select(*(func.pg_notify(c, p) for c, p in dict.fromkeys(self._notifications)))
                )
        except BaseException as error:
            await self._transaction.__aexit__(type(error), error, error.__traceback__)
            raise
        await self._transaction.__aexit__(exc_type, exc, traceback)
        self._conn = None
        if exc is None:
            if self._events:
                self._on_commit()
            for callback in self._after_commit:
                callback()
