"""A session's seat map as a stream: a snapshot, then every change of its places in version
order, read from `place_changes` (written in the transaction of each change). A committed change
only wakes the streams of its session (in this process at once; in other replicas through
PostgreSQL's NOTIFY, sent with the commit): what they send they read from the table, so they
never send a change that rolled back, skip one, or send one twice, whatever wake-ups are lost
or doubled. A client that comes back with the last version it saw (`since`) gets exactly what it
missed, or a fresh snapshot if it is too far behind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import Database
from agora.services.inventory.domain import SeatMap, SessionNotFound
from agora.services.inventory.repository import PLACE_CHANGES
from agora.services.inventory.store import (
    SALE,
    SEAT,
    place_changes,
    seat_map,
    ticket_sessions,
)
from agora.shared.fanout.in_process import InProcessFanout

__all__ = ["MAX_REPLAY", "Delta", "PlaceFeed", "Snapshot"]

MAX_REPLAY = 5_000
"""Changes a stream replays to a client that comes back; further behind, it gets a snapshot."""
PAGE = 500
RECHECK = 15.0
"""Seconds a stream waits for a wake-up before it reads the table anyway (a lost NOTIFY)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    seat_map: SeatMap


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
    """One change: a seat's new state, an area's free places, or (`kind` SALE) a new sales
    window, at `version`."""

    version: int
    kind: str
    place_id: str
    state: str | None
    available: int | None
    committed_at: dt.datetime
    sales: dict[str, Any] | None = None


class PlaceFeed:
    def __init__(self, db: Database) -> None:
        self._db = db
        # one pending wake-up is enough: a stream reads every change after its last when woken
        self._fanout = InProcessFanout(max_pending=1)
        self._waking: set[asyncio.Task[None]] = set()

    def announce(self, session_ids: Iterable[str]) -> None:
        """Wake the streams of `session_ids` (called after their change committed)."""
        for session_id in session_ids:
            channel = f"places:{session_id}"
            if self._fanout.subscriber_count(channel):
                task = asyncio.create_task(self._fanout.publish(channel, b""))
                self._waking.add(task)
                task.add_done_callback(self._waking.discard)

    async def listen(self) -> None:
        """Hear the changes other replicas commit (PostgreSQL; nothing to hear on SQLite)."""
        await self._db.listen(PLACE_CHANGES, lambda payload: self.announce(payload.split(",")))

    def close(self) -> None:
        """End every stream (the process is stopping)."""
        self._fanout.close()

    def watching(self) -> int:
        """Streams open now."""
        return self._fanout.subscription_count()

    async def stream(
        self, session_id: str, since: int | None = None
    ) -> AsyncIterator[Snapshot | Delta]:
        """The session's map from `since` on (its changes after that version), or from a
        snapshot; `SessionNotFound` before anything if there is no such session."""
        async with self._fanout.subscribe(f"places:{session_id}") as woken:
            async with self._db.read() as conn:
                current = await conn.scalar(VERSION, {"session": session_id})
                if current is None:
                    raise SessionNotFound(session_id)
                if since is None or since > current or current - since > MAX_REPLAY:
                    found = await seat_map(conn, session_id)
                    assert found is not None
                    since = found.version
                    snapshot: Snapshot | None = Snapshot(found)
                else:
                    snapshot = None
            if snapshot is not None:
                yield snapshot
            last = since
            while True:
                async with self._db.read() as conn:
                    deltas = await changes_after(conn, session_id, last, PAGE)
                for delta in deltas:
                    yield delta
                    last = delta.version
                if len(deltas) == PAGE:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK):
                        if await anext(woken, None) is None:  # the process is stopping
                            return


async def changes_after(
    conn: AsyncConnection, session_id: str, version: int, limit: int
) -> list[Delta]:
    rows = (
        await conn.execute(CHANGES, {"session": session_id, "after": version, "limit": limit})
    ).all()
    window = None
    if any(row.kind == SALE for row in rows):
        window = (await conn.execute(WINDOW, {"session": session_id})).one()
    return [
        Delta(
            version=row.version,
            kind=row.kind,
            place_id=row.place_id,
            state=row.state if row.kind == SEAT else None,
            available=row.available,
            committed_at=row.committed_at,
            sales=None
            if row.kind != SALE or window is None
            else {
                "starts_at": window.starts_at,
                "opens_at": window.opens_at,
                "closes_at": window.closes_at,
            },
        )
        for row in rows
    ]


VERSION = select(ticket_sessions.c.version).where(
    ticket_sessions.c.session_id == bindparam("session")
)
WINDOW = select(
    ticket_sessions.c.starts_at, ticket_sessions.c.opens_at, ticket_sessions.c.closes_at
).where(ticket_sessions.c.session_id == bindparam("session"))
CHANGES = (
    select(place_changes)
    .where(
        place_changes.c.session_id == bindparam("session"),
        place_changes.c.version > bindparam("after"),
    )
    .order_by(place_changes.c.version)
    .limit(bindparam("limit"))
)
