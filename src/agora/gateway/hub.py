"""Seat maps at the entry: one stream from inventory per session, however many clients of this
entry watch it.

When every service runs in processes of its own, a seat map's WebSocket clients connect to the
gateway. For each session they watch, the gateway keeps one upstream stream (`/ws/sessions/{id}`
of an inventory replica), applies what it sends to its own copy of the map, and sends each client
the same frames: a snapshot of its copy on joining (or, for a client that comes back with
`?since=`, the changes it missed, kept for the last `MAX_REPLAY` versions), then every run of
changes as inventory sent it. Inventory sends a change once per entry, not once per client.

The same guarantees as inventory's streams: versions in order, none skipped or repeated (the
upstream stream has them in order; the gateway resumes it with `?since=` when it drops), a client
past its backlog gets a snapshot instead, one that stops reading is dropped (1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agora.sockets import GOING_AWAY, NOT_FOUND, LiveMetrics, LiveSocket, serve

__all__ = ["SeatHub"]

logger = logging.getLogger(__name__)

MAX_REPLAY = 5_000
"""Changes kept per session to replay to a client that comes back."""
BACKLOG = 2_000
"""Changes a client may have waiting to be sent; one more and it gets a snapshot instead."""
MAX_FRAME_BYTES = 16 * 1024 * 1024


class _Gone(Exception):
    """The session's stream ended: no such session (4404), or the entry is stopping (1001)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Client:
    def __init__(self) -> None:
        # (changes, the commit of the oldest of them, frame)
        self.pending: deque[tuple[int, dt.datetime | None, str]] = deque()
        self.size = 0
        self.behind = False
        self.poked = False
        self.gone: _Gone | None = None
        self.arrived = asyncio.Event()
        self.idle = False
        """The stream waits for its next frame with nothing pending."""
        self.send_now: Callable[[int, dt.datetime | None, str], bool] | None = None

    def offer(self, changes: int, committed: dt.datetime | None, frame: str) -> None:
        if self.behind:
            return
        if (
            self.idle
            and not self.pending
            and self.send_now is not None
            and self.send_now(changes, committed, frame)
        ):
            return  # sent where it arrived: the stream sleeps on
        self.size += changes
        if self.size > BACKLOG:
            self.pending.clear()
            self.size = 0
            self.behind = True
        else:
            self.pending.append((changes, committed, frame))
        self.arrived.set()

    def end(self, gone: _Gone) -> None:
        self.gone = gone
        self.arrived.set()


class _Session:
    """One session's upstream stream, its map as the stream has it, and this entry's clients."""

    def __init__(self, hub: SeatHub, session_id: str) -> None:
        self.hub = hub
        self.session_id = session_id
        self.map: dict[str, Any] | None = None
        self.version = -1
        self.recent: deque[tuple[int, str]] = deque(maxlen=MAX_REPLAY)  # (version, delta JSON)
        self.clients: set[_Client] = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._snapshot: tuple[int, str] | None = None

    def snapshot_frame(self) -> str:
        """The map as a snapshot frame (made once per version, however many join at it)."""
        assert self.map is not None
        if self._snapshot is None or self._snapshot[0] != self.version:
            frame = orjson.dumps({"type": "snapshot", "map": self.map}).decode()
            self._snapshot = (self.version, frame)
        return self._snapshot[1]

    def kept_since(self, version: int) -> list[str] | None:
        """The changes after `version` up to the map's, if they are all kept here."""
        if version == self.version:
            return []
        if not self.recent or version < self.recent[0][0] - 1:
            return None
        return [body for kept, body in self.recent if kept > version]

    def end(self, gone: _Gone) -> None:
        for client in self.clients:
            client.end(gone)

    async def run(self) -> None:
        """Follow the session upstream until no client is left (reconnecting, with `since`,
        when the link drops)."""
        failures = 0
        while self.clients and not self.hub.closing:
            try:
                async with self.hub.upstream(self.session_id, self.version) as upstream:
                    with contextlib.suppress(ConnectionClosed):  # its code is read below
                        async for message in upstream:
                            failures = 0
                            if not self.take(orjson.loads(message)):
                                break  # a gap: resume from the last version applied
                if upstream.close_code == NOT_FOUND:
                    self.end(_Gone(NOT_FOUND, f"no session {self.session_id}"))
                    return
                error: Exception = ConnectionError(f"closed with {upstream.close_code}")
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as failed:
                error = failed
            failures += 1
            if failures == 1:  # a replica stopping (1001), restarting, or away
                logger.info("seat map %s upstream: %r; resuming", self.session_id, error)
            if failures > 1:
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))

    def take(self, message: dict[str, Any]) -> bool:
        """Apply one upstream message and hand it on; False if it does not follow the last
        version applied (nothing of it is applied then)."""
        kind = message.get("type")
        if kind == "snapshot":
            self.map = message["map"]
            self.version = int(message["map"]["version"])
            self.recent.clear()
            frame = self.snapshot_frame()
            for client in self.clients:  # they may have missed anything: all start again
                client.offer(0, None, frame)
            self.ready.set()
            return True
        if kind != "deltas" or self.map is None:
            return True
        fresh = [delta for delta in message["deltas"] if delta["version"] > self.version]
        if not fresh:
            return True
        if [d["version"] for d in fresh] != list(
            range(self.version + 1, self.version + 1 + len(fresh))
        ):
            logger.warning("seat map %s: upstream versions out of order; resuming", self.session_id)
            return False
        seats, areas = self.map["seats"], self.map["areas"]
        bodies = []
        for delta in fresh:
            if "seat_id" in delta:
                seats[delta["seat_id"]] = delta["state"]
            elif "area_id" in delta and delta["area_id"] in areas:
                areas[delta["area_id"]]["available"] = delta["available"]
            elif "sales" in delta:
                self.map["sales"] = delta["sales"]
            body = orjson.dumps(delta).decode()
            self.recent.append((delta["version"], body))
            bodies.append(body)
        self.version = self.map["version"] = fresh[-1]["version"]
        frame = '{"type":"deltas","deltas":[' + ",".join(bodies) + "]}"
        committed = dt.datetime.fromisoformat(fresh[0]["committed_at"])
        for client in self.clients:
            client.offer(len(fresh), committed, frame)
        return True


class SeatHub:
    """This entry's seat map streams, by session (see the module's docstring)."""

    def __init__(self, replicas: Callable[[], Sequence[str]], metrics: LiveMetrics) -> None:
        self._replicas = replicas
        self._metrics = metrics
        self._sessions: dict[str, _Session] = {}
        self._closing: _Gone | None = None

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def close(self) -> None:
        """End every stream with 1001 (the entry is stopping)."""
        self._closing = _Gone(GOING_AWAY, "the gateway is restarting: reconnect with ?since=")
        for session in self._sessions.values():
            session.end(self._closing)

    @contextlib.asynccontextmanager
    async def upstream(self, session_id: str, version: int) -> Any:
        """The session's stream from a replica of inventory, from after `version` (a
        snapshot first if it is -1)."""
        since = "" if version < 0 else f"?since={version}"
        error: Exception = OSError("no replica of inventory")
        for base in self._replicas():
            try:
                link = await connect(
                    "ws" + base.removeprefix("http") + f"/ws/sessions/{session_id}{since}",
                    compression=None,
                    proxy=None,
                    open_timeout=5,
                    max_size=MAX_FRAME_BYTES,
                    user_agent_header=None,
                )
            except (OSError, TimeoutError, InvalidHandshake) as refused:
                error = refused
                continue
            async with link:
                yield link
            return
        raise error

    async def _missed(self, session_id: str, since: int, until: int) -> list[str] | None:
        """The changes after `since` up to `until`, from inventory's change log (None if it
        no longer has them all: a snapshot then)."""
        bodies: list[str] = []
        async with self.upstream(session_id, since) as link:
            async for message in link:
                found = orjson.loads(message)
                if found.get("type") == "snapshot":
                    return None
                for delta in found.get("deltas", ()):
                    if delta["version"] <= until:
                        bodies.append(orjson.dumps(delta).decode())
                    if delta["version"] >= until:
                        return bodies
        return None  # the link ended first

    async def serve(self, websocket: WebSocket, session_id: str, since: int | None) -> None:
        """A client of the session's map, from `since` or a snapshot."""

        async def send(socket: LiveSocket) -> None:
            client = _Client()
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = _Session(self, session_id)
            session.clients.add(client)
            if session.task is None:
                session.task = asyncio.create_task(session.run(), name=f"hub {session_id}")
            try:
                if self._closing is not None:
                    raise self._closing
                await self._stream(socket, session, client, since)
            except _Gone as gone:
                await socket.close(gone.code, gone.reason)
            finally:
                session.clients.discard(client)
                if not session.clients:
                    if session.task is not None:
                        session.task.cancel()
                    if self._sessions.get(session_id) is session:
                        del self._sessions[session_id]

        await serve(websocket, "seats", self._metrics, send)

    async def _stream(
        self, socket: LiveSocket, session: _Session, client: _Client, since: int | None
    ) -> None:
        def poke() -> None:
            client.poked = True
            client.arrived.set()

        def send_now(changes: int, committed: dt.datetime | None, frame: str) -> bool:
            if not socket.send_now(frame):
                return False
            if committed is not None:
                self._metrics.count_sent("seats", "ws", changes, committed)
            return True

        socket.on_idle = poke
        while not session.ready.is_set():  # the session's first snapshot, or its end
            ready = asyncio.ensure_future(session.ready.wait())
            arrived = asyncio.ensure_future(client.arrived.wait())
            await asyncio.wait({ready, arrived}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            arrived.cancel()
            client.arrived.clear()
            if client.gone is not None:
                raise client.gone
        # Joined once the map is known: the client starts from this entry's copy at `joined`,
        # and is handed every run after it.
        joined = session.version
        client.pending.clear()
        client.size = 0
        missed = None
        if since is not None and since <= joined:
            missed = session.kept_since(since)
            if missed is None:  # from before this entry followed the session: ask inventory
                missed = await self._missed(session.session_id, since, joined)
        if missed is None:
            client.pending.clear()  # the snapshot is the map now: what came meanwhile is in it
            client.size = 0
            await socket.send(session.snapshot_frame())
        elif missed:
            await socket.send('{"type":"deltas","deltas":[' + ",".join(missed) + "]}")
        client.send_now = send_now
        while True:
            if client.gone is not None:
                raise client.gone
            if client.behind:
                client.behind = False
                self._metrics.resyncs.labels("seats").inc()
                await socket.send(session.snapshot_frame())
            elif client.pending:
                frames = list(client.pending)
                client.pending.clear()
                client.size = 0
                for changes, committed, frame in frames:
                    await socket.send(frame)
                    if committed is not None:
                        self._metrics.count_sent("seats", "ws", changes, committed)
            elif client.poked:
                client.poked = False
                await socket.heartbeat(version=session.version)
            else:
                client.arrived.clear()
                client.idle = True
                try:
                    await client.arrived.wait()
                finally:
                    client.idle = False
