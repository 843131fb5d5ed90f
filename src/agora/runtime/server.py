"""The HTTP server every process runs (uvicorn), with what bounds a client that stalls us.

uvicorn bounds the wait between requests on a kept-alive connection (`timeout_keep_alive`), but
nothing else: a client may take forever over a request's headers (every byte re-arms nothing)
or over its body. The headers are bounded here, in the server's protocol: a connection that has
not sent a whole request's headers `request_header_timeout_seconds` after it opened (or after
the previous response) is answered 408 and closed. The body is bounded by the app
(`agora.web`'s body deadline), which knows when a route reads it.

Its WebSocket connections also take a frame made once for many of them (`agora.sockets`'
`WRITE_FRAME` extension): a live stream's change goes to a thousand clients as a thousand
writes of the same bytes, without a message through the ASGI interface for each.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agora.problems import PROBLEM_JSON
from agora.settings import Settings
from agora.sockets import WRITE_FRAME
from agora.web import request_timeout

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

__all__ = ["uvicorn_config"]


def _header_deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, or h11 without it), with the header deadline."""
    import orjson
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    body = orjson.dumps(
        request_timeout(f"the request's headers did not arrive within {timeout:g} s").body()
    )
    answer = (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"Content-Type: " + PROBLEM_JSON.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    base: Any = AutoHTTPProtocol

    class HeaderDeadlineProtocol(base):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _received = False

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._received = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._received = False
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_timed_out(self) -> None:
            self._deadline = None
            transport: asyncio.Transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a request is being served: its body has a deadline of its own
            if self._received:
                transport.write(answer)
            transport.close()

    return HeaderDeadlineProtocol


WRITE_LIMIT = 256 * 1024
"""Bytes a connection may have waiting to be sent and still take a shared frame at once; past
them, its stream sends the usual way (and waits for the client, up to its send timeout)."""


def _shared_frames_protocol() -> type[asyncio.Protocol]:
    """uvicorn's WebSocket protocol (the websockets library's), with the `WRITE_FRAME`
    extension: a whole frame, serialized once, written to the connection as it is."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    base: Any = WebSocketsSansIOProtocol

    class SharedFramesProtocol(base):  # type: ignore[misc]
        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # none when the handshake was refused
            if scope is not None:  # its app has not started: the scope is the app's
                scope["extensions"][WRITE_FRAME] = {"write": self.write_frame}

        def write_frame(self, frame: bytes) -> bool:
            """Write `frame` now if the connection is open and keeping up with what it was
            sent; False if not (nothing written)."""
            transport: asyncio.Transport = self.transport
            if (
                self.conn.state is not State.OPEN
                or self.close_sent
                or not self.writable.is_set()
                or transport.is_closing()
                or transport.get_write_buffer_size() > WRITE_LIMIT
            ):
                return False
            transport.write(frame)
            return True

    return SharedFramesProtocol


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        http=_header_deadline_protocol(settings.request_header_timeout_seconds),
        ws=_shared_frames_protocol(),
        # X-Forwarded-For picks the client's address (rate limits, login throttling): only a
        # proxy of ours may set it. Behind `agora up`'s nginx the processes read the entry it
        # appends themselves (`agora.auth.client_ip`).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
    )
