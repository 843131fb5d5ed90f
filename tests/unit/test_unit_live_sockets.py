"""Live streams' common ground: which pages may open a stream, and a client that stops reading
being dropped with a close frame (1013) without holding up the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.websockets import WebSocketState

from agora.sockets import TOO_SLOW, LiveMetrics, LiveSocket, origin_allowed, stream_on


class Page:
    """The handshake of a browser page (only what `origin_allowed` reads)."""

    def __init__(self, origin: str | None, host: str = "agora.example:8000") -> None:
        self.headers = {"host": host} | ({"origin": origin} if origin else {})


@pytest.mark.parametrize(
    ("origin", "allowed", "admitted"),
    [
        (None, [], True),  # no browser page: a program, let in
        ("http://agora.example:8000", [], True),  # the console itself
        ("https://shop.example", ["https://shop.example"], True),
        ("https://shop.example", ["https://other.example"], False),
        ("http://agora.example:9000", [], False),  # another port is another origin
        ("https://anything.example", ["*"], True),
    ],
)
def test_a_page_may_open_a_stream_from_its_own_or_an_allowed_origin(
    origin: str | None, allowed: list[str], admitted: bool
) -> None:
    assert origin_allowed(Page(origin), allowed) is admitted  # type: ignore[arg-type]


class Client:
    """A client's connection: one that takes frames, or one whose reads have stopped (the send
    of a frame never completes)."""

    def __init__(self, *, reads: bool) -> None:
        self.reads = reads
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.application_state = WebSocketState.CONNECTED
        self.scope: dict[str, object] = {"type": "websocket"}

    async def send(self, message: dict[str, Any]) -> None:
        if not self.reads:
            await asyncio.Event().wait()
        self.frames.append(message["text"])

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self.application_state = WebSocketState.DISCONNECTED


@pytest.mark.parametrize("reads", [False, True])
async def test_a_client_that_stops_reading_is_dropped_with_a_close_frame(reads: bool) -> None:
    metrics = LiveMetrics(CollectorRegistry())
    metrics.send_timeout = 0.2
    client = Client(reads=reads)
    socket = LiveSocket(client, "seats", metrics)  # type: ignore[arg-type]
    sent = asyncio.Event()

    async def stream(socket: LiveSocket) -> None:
        for n in range(3):
            await socket.send(f'{{"n": {n}}}')
        sent.set()
        await asyncio.Event().wait()  # then nothing happens for a while

    task = socket.sender = asyncio.create_task(stream_on(socket, stream))
    metrics.opened(socket)
    try:
        if reads:  # the negative control: a reading client keeps its stream
            await asyncio.wait_for(sent.wait(), timeout=5)
            assert client.frames == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
            assert not task.done()
            assert client.closed is None
        else:
            await asyncio.wait_for(task, timeout=5)
            assert client.closed is not None
            assert client.closed[0] == TOO_SLOW
            assert metrics.dropped.labels("seats")._value.get() == 1
            assert client.frames == []
    finally:
        task.cancel()
        metrics.closed(socket)


async def test_a_quiet_stream_is_told_when_its_heartbeat_is_due() -> None:
    metrics = LiveMetrics(CollectorRegistry())
    metrics.heartbeat = 0.2
    quiet = LiveSocket(Client(reads=True), "seats", metrics)  # type: ignore[arg-type]
    talking = LiveSocket(Client(reads=True), "seats", metrics)  # type: ignore[arg-type]
    due: list[LiveSocket] = []
    told = asyncio.Event()

    def on_idle(socket: LiveSocket) -> None:
        due.append(socket)
        told.set()

    quiet.on_idle = lambda: on_idle(quiet)
    talking.on_idle = lambda: on_idle(talking)
    metrics.opened(quiet)
    metrics.opened(talking)
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.6
        while loop.time() < until:  # `talking` sends all along; `quiet` sends nothing
            await talking.send("{}")
            await asyncio.sleep(0.05)
        await asyncio.wait_for(told.wait(), timeout=5)
        assert quiet in due
        assert talking not in due
    finally:
        metrics.closed(quiet)
        metrics.closed(talking)
