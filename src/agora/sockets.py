"""What every live stream over WebSocket shares: who may open one (the page's origin), how its
messages are sent (JSON text frames, a heartbeat when nothing happens, a bounded wait on a client
that does not read), how it ends (a close frame saying why, on SIGTERM too), and its metrics.

A stream is a coroutine that sends; `serve` runs it beside a reader of what the client sends (a
first `auth` message, and the client's own close), and ends both when either ends.

A change many clients watch is sent to them all at once where it happens (`LiveSocket.send_now`):
its frame is serialized once and written to each connection that is keeping up, when the server
offers that (`WRITE_FRAME`, our uvicorn's); a client that is not, or another server, is sent it by
its own stream the usual way.

Close codes: 1000 normal, 1001 the server is going away (reconnect with `?since=`), 1013 the
client did not read fast enough (reconnect with `?since=`), 4401 no valid token, 4403 the
origin is not allowed, 4404 not found (4000 + the HTTP status an API request would get).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.frames import Frame, Opcode

from agora.auth import InvalidToken, KeysUnavailable, Principal
from agora.auth.web import verifier_of
from agora.shared.revocations import RevocationsUnavailable

__all__ = [
    "FORBIDDEN",
    "GOING_AWAY",
    "HEARTBEAT",
    "NOT_FOUND",
    "TOO_SLOW",
    "UNAUTHORIZED",
    "WRITE_FRAME",
    "LiveMetrics",
    "LiveSocket",
    "entry_origins",
    "origin_allowed",
    "serve",
    "stream_on",
]

logger = logging.getLogger(__name__)

HEARTBEAT = 15.0
"""Seconds of silence after which a stream sends `{"type": "heartbeat"}`."""
SEND_TIMEOUT = 10.0
"""Seconds a frame may wait for a client to read; then the client is dropped (1013)."""
AUTH_TIMEOUT = 10.0
"""Seconds a stream that needs a token waits for the client's first message."""

WRITE_FRAME = "agora.websocket.write_frame"
"""The ASGI extension of a WebSocket connection that takes a whole serialized frame at once:
`scope["extensions"][WRITE_FRAME]["write"](frame) -> bool` (False: not now, nothing written)."""

NORMAL = 1000
GOING_AWAY = 1001
TOO_SLOW = 1013
UNAUTHORIZED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404


class Committed(Protocol):
    @property
    def committed_at(self) -> dt.datetime: ...


class LiveMetrics:
    """The live streams' metrics, once per registry (every service of a process shares them)."""

    _known: weakref.WeakKeyDictionary[CollectorRegistry, LiveMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["stream", "transport"]
        self.clients = Gauge(
            "agora_live_clients", "Clients of a live stream now", labels, registry=registry
        )
        self.sent = Counter(
            "agora_live_deltas_sent", "Changes sent to live clients", labels, registry=registry
        )
        self.dropped = Counter(
            "agora_live_clients_dropped",
            "Clients dropped because they did not read what they were sent",
            ["stream"],
            registry=registry,
        )
        self.resyncs = Counter(
            "agora_live_resyncs",
            "Snapshots sent instead of a backlog to clients that fell behind",
            ["stream"],
            registry=registry,
        )
        self.latency = Histogram(
            "agora_live_delta_latency_seconds",
            "From a change's commit to its message handed to the client's connection (the "
            "oldest change of the message)",
            labels,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.open: set[LiveSocket] = set()
        self._emptied = asyncio.Event()
        self._emptied.set()
        self._watchdog: asyncio.Task[None] | None = None
        self.now = time.monotonic
        self.send_timeout = SEND_TIMEOUT
        self.heartbeat = HEARTBEAT

    async def _watch_sends(self) -> None:
        """Drop the clients a frame has waited for over `send_timeout` seconds (one timer for
        every socket, not one per frame sent)."""
        while self.open:
            await asyncio.sleep(min(1.0, self.send_timeout / 4, self.heartbeat / 4))
            now = self.now()
            for socket in list(self.open):
                since = socket.busy_since
                if since is not None and now - since > self.send_timeout and not socket.too_slow:
                    socket.too_slow = True
                    if socket.sender is not None:
                        socket.sender.cancel()
                elif since is None and now - socket.last_sent > self.heartbeat and socket.on_idle:
                    socket.last_sent = now
                    socket.on_idle()
        self._watchdog = None

    @classmethod
    def of(cls, registry: CollectorRegistry) -> LiveMetrics:
        known = cls._known.get(registry)
        if known is None:
            known = cls._known[registry] = cls(registry)
        return known

    def sent_changes(self, stream: str, transport: str, changes: Sequence[Committed]) -> None:
        """Count changes just handed to a client in one message, and how long after the
        commit of the oldest (the message's latency: the others waited less)."""
        if changes:
            self.count_sent(stream, transport, len(changes), changes[0].committed_at)

    def count_sent(self, stream: str, transport: str, count: int, oldest: dt.datetime) -> None:
        """Count `count` changes just handed to a client in one message, the oldest committed
        at `oldest`."""
        children = self._children.get((stream, transport))
        if children is None:
            children = self._children[stream, transport] = (
                self.sent.labels(stream, transport),
                self.latency.labels(stream, transport),
            )
        children[0].inc(count)
        waited = (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        children[1].observe(max(waited, 0.0))

    def opened(self, socket: LiveSocket) -> None:
        self.open.add(socket)
        self._emptied.clear()
        self.clients.labels(socket.stream, "ws").inc()
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch_sends(), name="live send watchdog")

    def closed(self, socket: LiveSocket) -> None:
        if socket in self.open:
            self.open.discard(socket)
            self.clients.labels(socket.stream, "ws").dec()
        if not self.open:
            self._emptied.set()

    async def all_closed(self, timeout: float) -> None:
        """Return once no socket is open, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._emptied.wait()


_last_frame: tuple[str, bytes] = ("", b"")


def _serialized(text: str) -> bytes:
    """`text` as a whole unmasked text frame (a server's), made once for the last text seen."""
    global _last_frame
    if _last_frame[0] is not text:
        _last_frame = (text, Frame(Opcode.TEXT, text.encode()).serialize(mask=False))
    return _last_frame[1]


def origin_allowed(websocket: WebSocket, allowed: Sequence[str]) -> bool:
    """A browser's page may open a stream if it is of this host or of an origin the CORS
    allow-list names; a client that sends no `Origin` is no browser page, and is let in."""
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


class TooSlow(Exception):
    """The client did not take a frame within `SEND_TIMEOUT`."""


@dataclasses.dataclass(eq=False)
class LiveSocket:
    """An accepted WebSocket, as a stream sends to it."""

    websocket: WebSocket
    stream: str
    metrics: LiveMetrics
    messages: asyncio.Queue[Any] = dataclasses.field(
        default_factory=lambda: asyncio.Queue(maxsize=8)
    )

    on_idle: Callable[[], None] | None = None
    """Called by the watchdog when nothing was sent for `HEARTBEAT` seconds (a stream that
    waits without a timer of its own sends its heartbeat then)."""
    last_sent: float = dataclasses.field(default_factory=time.monotonic)
    busy_since: float | None = None
    """When the frame being sent began to wait for the client (`LiveMetrics`' watchdog drops
    a client that makes one wait over `SEND_TIMEOUT` seconds)."""
    too_slow: bool = False
    sender: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        extension = self.websocket.scope.get("extensions", {}).get(WRITE_FRAME)
        self._write: Callable[[bytes], bool] | None = extension and extension["write"]

    def send_now(self, frame: str) -> bool:
        """Hand `frame` to the connection at once, from outside the stream (True), if the
        server takes shared frames and the connection is idle and keeping up; False: nothing
        was sent, the stream must send it. `frame` should be one object for every client it
        goes to: it is serialized once (for the last `frame` seen)."""
        if self._write is None or self.busy_since is not None:
            return False
        if not self._write(_serialized(frame)):
            return False
        self.last_sent = self.metrics.now()
        return True

    async def send(self, frame: str) -> None:
        """Send one text frame (`TooSlow` once the watchdog found the client too slow)."""
        self.busy_since = self.last_sent = self.metrics.now()
        try:
            await self.websocket.send({"type": "websocket.send", "text": frame})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.too_slow and task is not None and task is self.sender:
                task.uncancel()  # the watchdog's doing: the stream ends with a close frame
                raise TooSlow from None
            raise
        finally:
            self.busy_since = None

    async def send_json(self, body: Any) -> None:
        await self.send(orjson.dumps(body).decode())

    async def heartbeat(self, **fields: Any) -> None:
        await self.send_json({"type": "heartbeat", **fields})

    async def close(self, code: int, reason: str = "") -> None:
        if self.websocket.application_state is not WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.websocket.close(code, reason)

    async def token(self, query_token: str | None) -> str | None:
        """The access token: the `token` query parameter, else the first message's
        (`{"type": "auth", "token": "..."}`, within `AUTH_TIMEOUT` seconds)."""
        if query_token:
            return query_token
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                message = await self.messages.get()
        except TimeoutError:
            return None
        if isinstance(message, dict) and message.get("type") == "auth":
            token = message.get("token")
            return token if isinstance(token, str) and token else None
        return None

    async def principal(self, query_token: str | None) -> Principal | None:
        """The caller, verified as a request's token is, or None after closing the socket with
        4401 (no token, or one that does not verify now)."""
        token = await self.token(query_token)
        if token is None:
            await self.close(UNAUTHORIZED, "send an access token: ?token= or an auth message")
            return None
        try:
            return await verifier_of(self.websocket).verify(token)
        except (InvalidToken, KeysUnavailable, RevocationsUnavailable):
            await self.close(UNAUTHORIZED, "the access token is invalid, expired or revoked")
            return None


def entry_origins(websocket: WebSocket) -> Sequence[str]:
    """The origins the app serving `websocket` lets in: its CORS allow-list
    (`app.state.cors_origins`; every process is an entry)."""
    return tuple(getattr(websocket.app.state, "cors_origins", ()))


async def serve(
    websocket: WebSocket,
    stream: str,
    metrics: LiveMetrics,
    send: Callable[[LiveSocket], Awaitable[None]],
) -> None:
    """Accept `websocket` if its origin is allowed (`entry_origins`), and run `send` on it
    until it returns, the client leaves, or the client reads too slowly."""
    if not origin_allowed(websocket, entry_origins(websocket)):
        await websocket.close(FORBIDDEN, "origin not allowed")  # refused before accepting: 403
        return
    await websocket.accept()
    socket = LiveSocket(websocket, stream, metrics)
    metrics.opened(socket)
    sending = socket.sender = asyncio.create_task(stream_on(socket, send), name=f"{stream} stream")
    reading = asyncio.create_task(_reading(socket), name=f"{stream} stream reader")
    try:
        await asyncio.wait({sending, reading}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, reading):
            task.cancel()
        await asyncio.gather(sending, reading, return_exceptions=True)
        metrics.closed(socket)


async def stream_on(socket: LiveSocket, send: Callable[[LiveSocket], Awaitable[None]]) -> None:
    """Run the stream `send` on `socket`, and end it with the close frame that says why."""
    try:
        await send(socket)
    except TooSlow:
        socket.metrics.dropped.labels(socket.stream).inc()
        await socket.close(TOO_SLOW, "too slow: reconnect with ?since=")
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("%s stream failed", socket.stream)
        await socket.close(1011, "server error: reconnect with ?since=")
    else:
        await socket.close(NORMAL)


async def _reading(socket: LiveSocket) -> None:
    """What the client sends, to `socket.messages` (the first `auth` message; anything more is
    dropped); returns when the client closes."""
    websocket = socket.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None or socket.messages.full():
            continue
        try:
            socket.messages.put_nowait(orjson.loads(text))
        except orjson.JSONDecodeError:
            socket.messages.put_nowait(None)
