"""A session's seat map as a stream: a snapshot, then every change of its places in version
order, read from `place_changes` (written in the transaction of each change, each with the
session's next version, so a session's versions have no holes and commit in their order).

One reader per session and process reads the table when a commit wakes it (in this process at
once; from other replicas through PostgreSQL's NOTIFY, sent with the commit) and hands what it
read to every watcher of the session: one query per change however many watch. A watcher never
trusts the hand-off alone: a delta that does not follow its last version makes it read the
missing ones from the table first, so nothing is skipped, sent twice or sent before its commit,
whatever wake-ups are lost or doubled. Each watcher's backlog is bounded: one that falls behind
is given a fresh snapshot instead. A client that comes back with the last version it saw
(`since`) gets exactly what it missed, or a snapshot if it is too far behind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.contracts.ticketing import SalesWindow
from agora.messaging import Database, utcnow
from agora.services.inventory.domain import SeatMap, SessionNotFound
from agora.services.inventory.repository import PLACE_CHANGES
from agora.services.inventory.store import (
    AREA,
    SALE,
    SEAT,
    place_changes,
    seat_map,
    ticket_sessions,
)

__all__ = [
    "BACKLOG",
    "MAX_REPLAY",
    "SEAT_STATES",
    "Delta",
    "FeedClosed",
    "PlaceFeed",
    "Run",
    "Snapshot",
    "Watch",
]

logger = logging.getLogger(__name__)

MAX_REPLAY = 5_000
"""Changes a stream replays to a client that comes back (and the change log keeps per session);
further behind, it gets a snapshot."""
BACKLOG = 2_000
"""Changes a watcher may have waiting to be sent; one more and it gets a snapshot instead."""
PAGE = 500
RECHECK = 15.0
"""Seconds a reader waits for a wake-up before it reads the table anyway (a lost NOTIFY)."""

SEAT_STATES: dict[str, Literal["available", "held", "sold"]] = {
    "FREE": "available",
    "HELD": "held",
    "SOLD": "sold",
}


class FeedClosed(Exception):
    """The process is stopping: every stream ends."""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A session's map at its version, and what it was encoded to (each encoding made once
    however many streams send the snapshot)."""

    seat_map: SeatMap
    _encoded: dict[Hashable, str] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def encoded(self, key: Hashable, encode: Callable[[], str]) -> str:
        """`encode()`, made once per `key`."""
        if key not in self._encoded:
            self._encoded[key] = encode()
        return self._encoded[key]


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
    """One change at `version`: a seat's new state, an area's free places, or (`kind` SALE) a
    new sales window. `body` is its JSON as every stream sends it (encoded once per process)."""

    version: int
    kind: str
    place_id: str
    committed_at: dt.datetime
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """Deltas of consecutive versions, and the message that sends them (`{"type": "deltas",
    "deltas": [...]}`): made once for every stream a reader hands the same run to."""

    deltas: tuple[Delta, ...]
    message: str

    @classmethod
    def of(cls, deltas: Sequence[Delta]) -> Run:
        bodies = b",".join(d.body for d in deltas).decode()
        return cls(tuple(deltas), '{"type":"deltas","deltas":[' + bodies + "]}")

    @property
    def first(self) -> int:
        return self.deltas[0].version

    @property
    def last(self) -> int:
        return self.deltas[-1].version


class _Watcher:
    """A stream's inbox: the runs handed to it, at most `BACKLOG` deltas in all."""

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self.pending: deque[Run] = deque()
        self.size = 0
        self.behind = False
        self.closed = False
        self.poked = False
        self.arrived = asyncio.Event()
        self.idle: Watch | None = None
        """The stream, while it waits for its next run with nothing pending."""
        self.send_now: Callable[[Run], bool] | None = None

    def offer(self, run: Run) -> None:
        if self.behind:
            return
        idle = self.idle
        if (
            idle is not None
            and not self.pending
            and run.first == idle.last + 1
            and self.send_now is not None
            and self.send_now(run)
        ):
            idle.last = run.last  # sent where it happened: the stream sleeps on
            return
        self.size += len(run.deltas)
        if self.size > self.backlog:
            self.clear()
            self.behind = True
        else:
            self.pending.append(run)
        self.arrived.set()

    def clear(self) -> None:
        self.pending.clear()
        self.size = 0

    def close(self) -> None:
        self.closed = True
        self.arrived.set()


class _Reader:
    """Reads one session's changes for every watcher of it in this process."""

    def __init__(self, db: Database, session_id: str) -> None:
        self._db = db
        self.session_id = session_id
        self.watchers: set[_Watcher] = set()
        self._woken = asyncio.Event()
        self._stopped = False
        self.last: int | None = None
        """The last version handed to the watchers (None before the first read)."""
        self.task: asyncio.Task[None] | None = None
        self.snapshot: Snapshot | None = None
        """The map as a watcher last read it: given to the next that needs a snapshot while
        its version is `last` (a thousand joiners read the map once, not a thousand times)."""

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped = True
        self._woken.set()

    def hand(self, run: Run) -> None:
        """Hand `run`, just committed in this process, to every watcher."""
        if self.last is not None:
            # Versions before it that are not read yet commit before it: a watcher reads
            # them itself when it sees the gap.
            self.last = max(self.last, run.last)
        for watcher in self.watchers:
            watcher.offer(run)

    async def run(self) -> None:
        failures = 0
        while not self._stopped and self.watchers:
            self._woken.clear()
            try:
                more = await self._read()
            except Exception as error:  # the database is away: the watchers wait, and so do we
                failures += 1
                if failures == 1:
                    logger.warning("seat map reader %s: %r; retrying", self.session_id, error)
                self._woken.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(0.1 * 2**failures, RECHECK)):
                        await self._woken.wait()
                continue
            failures = 0
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECHECK):
                    await self._woken.wait()

    async def _read(self) -> bool:
        """Hand the changes after `last` to the watchers; whether there may be more."""
        async with self._db.read() as conn:
            if self.last is None:
                # Where reading starts does not matter: each watcher fills what lies between
                # its own last version and the first one handed to it.
                self.last = await conn.scalar(VERSION, {"session": self.session_id}) or 0
                return False
            deltas = await changes_after(conn, self.session_id, self.last, PAGE)
        fresh = [d for d in deltas if d.version > self.last]  # some may have been handed
        if fresh:
            self.last = fresh[-1].version
            run = Run.of(fresh)
            for watcher in self.watchers:
                watcher.offer(run)
        return len(deltas) == PAGE


class Watch:
    """One stream of a session's map, from `since` on or from a snapshot (see `PlaceFeed`)."""

    def __init__(
        self,
        db: Database,
        reader: _Reader,
        watcher: _Watcher,
        since: int | None,
        current: int | None = None,
    ) -> None:
        self._db = db
        self._reader = reader
        self._current = current
        """The session's version read as the stream began: its first snapshot is no older."""
        self.session_id = reader.session_id
        self._watcher = watcher
        self.last = -1 if since is None else since
        self._snapshot_due = since is None
        self._replaying = since is not None
        self.resyncs = 0
        """Snapshots sent because the stream fell behind."""

    def send_at_once(self, send_now: Callable[[Run], bool]) -> None:
        """Let the runs that follow this stream's last version while it waits be sent by
        `send_now` where they are handed out (True: sent; False: the stream's `next` returns
        it as usual): one call per client however many watch, no wake-up of the stream."""
        self._watcher.send_now = send_now

    def poke(self) -> None:
        """Make the `next` waiting now (or the next one) return None at once (time for a
        heartbeat: one timer for every stream, not one per wait)."""
        self._watcher.poked = True
        self._watcher.arrived.set()

    async def next(self, timeout: float | None) -> Snapshot | Run | None:
        """The next snapshot or run of deltas (in version order, each once), or None if
        nothing changed within `timeout` seconds (None: no limit) or `poke` was called. Raises
        `FeedClosed` once the feed closes."""
        watcher = self._watcher
        if self._snapshot_due:
            return await self._snapshot()
        if self._replaying:  # what happened between `since` and now, from the table
            async with self._db.read() as conn:
                deltas = await changes_after(conn, self.session_id, self.last, PAGE)
            self._replaying = len(deltas) == PAGE
            if deltas:
                self.last = deltas[-1].version
                return Run.of(deltas)
        while True:
            if watcher.closed:
                raise FeedClosed
            if watcher.behind:
                watcher.behind = False
                watcher.clear()
                self.resyncs += 1
                return await self._snapshot()
            if watcher.pending:
                run = await self._following(watcher)
                if run is not None:
                    return run
                continue
            if watcher.poked:
                watcher.poked = False
                return None
            watcher.arrived.clear()
            watcher.idle = self
            try:
                if timeout is None:
                    await watcher.arrived.wait()
                    continue
                async with asyncio.timeout(timeout):
                    await watcher.arrived.wait()
            except TimeoutError:
                return None
            finally:
                watcher.idle = None

    async def _following(self, watcher: _Watcher) -> Snapshot | Run | None:
        """The pending deltas after `last` in version order, each once (None if there are
        none); any version missing among them read from the table. Runs may come out of
        order: two transactions commit one after the other, and their hand-offs come in the
        other order."""
        runs = list(watcher.pending)
        watcher.clear()
        if len(runs) == 1 and runs[0].first == self.last + 1:  # the usual case: shared as is
            self.last = runs[0].last
            return runs[0]
        found = {d.version: d for run in runs for d in run.deltas if d.version > self.last}
        if not found:
            return None
        wanted = max(found) - self.last
        if len(found) == wanted:
            taken = [found[version] for version in sorted(found)]
        elif wanted > MAX_REPLAY:
            return await self._snapshot()
        else:
            async with self._db.read() as conn:
                taken = await changes_after(conn, self.session_id, self.last, wanted)
            if len(taken) < wanted:  # pruned from the log meanwhile
                return await self._snapshot()
        self.last = taken[-1].version
        return Run.of(taken)

    async def _snapshot(self) -> Snapshot:
        reader = self._reader
        snapshot = reader.snapshot
        current = reader.last if self._current is None else self._current
        self._current = None
        if snapshot is None or snapshot.seat_map.version != current:
            # Not current (as far as the stream or the reader knows; a change committed
            # meanwhile comes as a run after it, or is read when the stream sees the gap).
            async with self._db.read() as conn:
                found = await seat_map(conn, self.session_id)
            if found is None:
                raise SessionNotFound(self.session_id)
            snapshot = reader.snapshot = Snapshot(found)
        self.last = snapshot.seat_map.version
        self._snapshot_due = self._replaying = False
        return snapshot


class PlaceFeed:
    def __init__(self, db: Database, *, backlog: int = BACKLOG) -> None:
        self._db = db
        self._backlog = backlog
        self._readers: dict[str, _Reader] = {}
        self._closed = False

    def announce(self, session_ids: Iterable[str]) -> None:
        """Wake the readers of `session_ids` (called after their change committed)."""
        for session_id in session_ids:
            reader = self._readers.get(session_id)
            if reader is not None:
                reader.wake()

    def committed(self, sessions: Iterable[str], rows: Sequence[Mapping[str, Any]]) -> None:
        """Hand the change log `rows` this process just committed to the streams of their
        sessions at once, without reading them back (a session's new sales window is read:
        its reader is woken); any other of `sessions` wakes its reader."""
        runs: dict[str, list[Delta]] = {}
        for row in rows:
            reader = self._readers.get(row["session_id"])
            if reader is not None and row["kind"] != SALE:
                runs.setdefault(row["session_id"], []).append(
                    delta(
                        row["version"],
                        row["kind"],
                        row["place_id"],
                        row["state"],
                        row["available"],
                        row["committed_at"],
                        None,
                    )
                )
        for session_id in sessions:
            reader = self._readers.get(session_id)
            if reader is None:
                continue
            deltas = runs.get(session_id)
            if deltas and len(deltas) == deltas[-1].version - deltas[0].version + 1:
                reader.hand(Run.of(sorted(deltas, key=lambda d: d.version)))
            else:
                reader.wake()

    async def listen(self) -> None:
        """Hear the changes other replicas commit (PostgreSQL; nothing to hear on SQLite); when
        some may have been missed, every stream reads its session's change log again."""
        await self._db.listen(
            PLACE_CHANGES,
            lambda payload: self.announce(payload.split(",")),
            missed=lambda: self.announce(list(self._readers)),
        )

    def close(self) -> None:
        """End every stream (the process is stopping)."""
        self._closed = True
        for reader in self._readers.values():
            reader.stop()
            for watcher in reader.watchers:
                watcher.close()

    def watching(self) -> int:
        """Streams open now."""
        return sum(len(reader.watchers) for reader in self._readers.values())

    @contextlib.asynccontextmanager
    async def watch(self, session_id: str, since: int | None = None) -> AsyncIterator[Watch]:
        """A stream of the session's map from `since` on (its changes after that version), or
        from a snapshot (the first `next`); `SessionNotFound` at once if there is no such
        session."""
        watcher = _Watcher(self._backlog)
        if self._closed:
            watcher.close()
        reader = self._readers.get(session_id)
        if reader is None:
            reader = self._readers[session_id] = _Reader(self._db, session_id)
        reader.watchers.add(watcher)  # before reading: nothing committed later is missed
        try:
            async with self._db.read() as conn:
                current = await conn.scalar(VERSION, {"session": session_id})
            if current is None:
                raise SessionNotFound(session_id)
            resumable = since is not None and since <= current and current - since <= MAX_REPLAY
            watch = Watch(self._db, reader, watcher, since if resumable else None, current)
            if reader.last is not None and reader.last < current:
                reader.wake()  # committed elsewhere, its wake-up not here yet
            if reader.task is None and not self._closed:
                reader.task = asyncio.create_task(
                    reader.run(), name=f"seat map reader {session_id}"
                )
            yield watch
        finally:
            reader.watchers.discard(watcher)
            if not reader.watchers:
                reader.stop()
                if self._readers.get(session_id) is reader:
                    del self._readers[session_id]

    async def stream(
        self, session_id: str, since: int | None = None
    ) -> AsyncIterator[Snapshot | Delta]:
        """`watch` as an iterator of single items, ending when the feed closes."""
        async with self.watch(session_id, since) as watch:
            while True:
                try:
                    item = await watch.next(RECHECK)
                except FeedClosed:
                    return
                if isinstance(item, Snapshot):
                    yield item
                elif item is not None:
                    for delta in item.deltas:
                        yield delta

    async def prune(self) -> int:
        """Forget changes no stream would replay (more than `MAX_REPLAY` behind their
        session's version); the number forgotten."""
        async with self._db.write() as conn:
            result = await conn.execute(PRUNE, {"keep": MAX_REPLAY})
        return int(result.rowcount or 0)


def delta_body(
    kind: str,
    place_id: str,
    state: str | None,
    available: int | None,
    window: SalesWindow | None,
) -> dict[str, Any]:
    """A change as every stream sends it: a seat's new state, an area's free places, or the
    session's new sales window."""
    if kind == SEAT:
        return {"seat_id": place_id, "state": SEAT_STATES[state or "FREE"]}
    if kind == AREA:
        return {"area_id": place_id, "available": available}
    if kind == SALE and window is not None:
        return {
            "sales": {
                "open": window.is_open(utcnow()),
                "opens_at": window.opens_at,
                "closes_at": window.closes_at,
            }
        }
    return {}


async def changes_after(
    conn: AsyncConnection, session_id: str, version: int, limit: int
) -> list[Delta]:
    rows = (
        await conn.execute(CHANGES, {"session": session_id, "after": version, "limit": limit})
    ).all()
    window = None
    if any(row.kind == SALE for row in rows):
        found = (await conn.execute(WINDOW, {"session": session_id})).one()
        window = SalesWindow(
            starts_at=found.starts_at, opens_at=found.opens_at, closes_at=found.closes_at
        )
    return [
        delta(
            row.version,
            row.kind,
            row.place_id,
            row.state,
            row.available,
            row.committed_at,
            window,
        )
        for row in rows
    ]


def delta(
    version: int,
    kind: str,
    place_id: str,
    state: str | None,
    available: int | None,
    committed_at: dt.datetime,
    window: SalesWindow | None,
) -> Delta:
    """A change log row as the streams send it."""
    body = {
        "version": version,
        **delta_body(kind, place_id, state, available, window),
        "committed_at": committed_at,
    }
    return Delta(version, kind, place_id, committed_at, orjson.dumps(body))


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
PRUNE = delete(place_changes).where(
    place_changes.c.version
    <= select(ticket_sessions.c.version - bindparam("keep"))
    .where(ticket_sessions.c.session_id == place_changes.c.session_id)
    .scalar_subquery()
)
