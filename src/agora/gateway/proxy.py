"""The HTTP gateway when every service runs in processes of its own: one entry that forwards
each request to a replica of the service owning the path (round robin, skipping replicas that
refuse the connection), and serves the whole API's OpenAPI document and docs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import httpx
from fastapi import APIRouter, FastAPI, Request, Response, WebSocket
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agora.console import console_router
from agora.gateway.hub import SeatHub
from agora.messaging import utcnow
from agora.openapi import describe
from agora.preferences import wait_preference
from agora.problems import ProblemError
from agora.services.spec import PathTable
from agora.sockets import (
    FORBIDDEN,
    GOING_AWAY,
    NOT_FOUND,
    TOO_SLOW,
    LiveMetrics,
    LiveSocket,
    origin_allowed,
)
from agora.web import BODY_TIMEOUT, MAX_BODY_BYTES, Health, Readiness, Unavailable, create_app

__all__ = ["create_gateway"]

logger = logging.getLogger(__name__)

# Headers that describe one connection, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STREAMS = {"sessions": "seats", "orders": "orders"}
"""The metrics' name of the stream a WebSocket path's first segment names."""
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest frame relayed from a service (a snapshot of a large seat map is a few MB)."""


class _Upstreams:
    def __init__(self, upstreams: Mapping[str, Sequence[str]]) -> None:
        self._urls = {name: list(urls) for name, urls in upstreams.items() if urls}
        self._turns = {name: itertools.cycle(range(len(urls))) for name, urls in self._urls.items()}

    def in_turn(self, service: str) -> list[str]:
        """Every replica of `service`, starting with the next in turn."""
        urls = self._urls.get(service, [])
        if not urls:
            return []
        start = next(self._turns[service])
        return urls[start:] + urls[:start]


def create_gateway(
    upstreams: Mapping[str, Sequence[str]],
    paths: PathTable,
    routers: Sequence[APIRouter],
    metrics_registry: CollectorRegistry,
    *,
    timeout: float = 30.0,
    client_factory: Callable[[], httpx.AsyncClient] | None = None,
    edge: Callable[[ASGIApp], ASGIApp] | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float = BODY_TIMEOUT,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """`paths` says which service owns a path. `routers` are the services' routers, used for the
    OpenAPI document only: requests are forwarded, never served here. `edge`: see `create_app`."""
    replicas = _Upstreams(upstreams)
    state: dict[str, httpx.AsyncClient] = {}
    live = LiveMetrics.of(metrics_registry)
    closing = asyncio.Event()
    service = paths.service_for("/ws/sessions/x")
    hub = SeatHub(lambda: replicas.in_turn(service) if service else [], live)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # requests waiting for an order to change (`Prefer: wait`) hold a connection for up to
        # 20 s each: room for thousands of them beside the rest
        limits = httpx.Limits(max_connections=4096, max_keepalive_connections=256)
        state["client"] = (client_factory or (lambda: httpx.AsyncClient(limits=limits)))()
        try:
            yield
        finally:
            await state["client"].aclose()
            if on_close is not None:
                await on_close()

    async def refresh_metrics() -> None:
        return None

    async def health() -> Health:
        """The sum over every replica of every service; `degraded` if one does not answer."""

        async def one(url: str) -> Health | None:
            try:
                response = await state["client"].get(f"{url}/healthz", timeout=5)
                return Health.model_validate(response.json())
            except (httpx.HTTPError, ValueError):
                return None

        urls = [url for service in upstreams for url in upstreams[service]]
        answers = await asyncio.gather(*(one(url) for url in urls))
        healthy = [answer for answer in answers if answer is not None]
        return Health(
            status="ok"
            if len(healthy) == len(urls) and all(h.status == "ok" for h in healthy)
            else "degraded",
            outbox_backlog=sum(h.outbox_backlog for h in healthy),
            consumer_lag=sum(h.consumer_lag for h in healthy),
        )

    async def readiness() -> Readiness:
        """Ready when every replica of every service is: what each replica waits for, and a
        replica that does not answer as waited for itself."""

        async def one(service: str, url: str) -> Readiness:
            try:
                response = await state["client"].get(f"{url}/readyz", timeout=5)
                body = response.json()
                if response.status_code == 200:
                    return Readiness.model_validate(body)
                unavailable = [Unavailable.model_validate(u) for u in body["unavailable"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                unavailable = [
                    Unavailable(
                        component=f"{service} at {url}",
                        dependency="replica",
                        since=utcnow(),
                        error=f"{type(error).__name__}: {error}",
                    )
                ]
            return Readiness(ready=False, unavailable=unavailable)

        pairs = [(service, url) for service in upstreams for url in upstreams[service]]
        answers = await asyncio.gather(*(one(service, url) for service, url in pairs))
        unavailable = [u for answer in answers for u in answer.unavailable]
        return Readiness(ready=all(a.ready for a in answers), unavailable=unavailable)

    app = create_app(
        [],
        metrics_registry,
        refresh_metrics=refresh_metrics,
        health=health,
        readiness=readiness,
        lifespan=lifespan,
        edge=edge,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
    )
    app.openapi = describe(app, routers)  # type: ignore[method-assign]
    app.include_router(console_router())

    @app.api_route(
        "/api/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    @app.get("/.well-known/{path:path}", include_in_schema=False)
    async def forward(request: Request, path: str) -> Response:
        service = paths.service_for(request.url.path)
        if service is None:
            raise ProblemError(404, "not-found", "Not found", f"no route {request.url.path}")
        body = await request.body()
        # raw bytes: a value that is not ASCII (obs-text) goes on as it came
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in HOP_BY_HOP and name != b"x-forwarded-for"
        ]
        peer = request.client.host if request.client else "unknown"
        forwarded = request.headers.get("x-forwarded-for")
        headers.append(
            (b"x-forwarded-for", (f"{forwarded}, {peer}" if forwarded else peer).encode("latin-1"))
        )
        # the path and query as they came, still percent-encoded: decoding them here and
        # encoding them again would change them (and a control character is no URL)
        query = request.scope.get("query_string", b"")
        target = (request.scope.get("raw_path") or request.url.path.encode()) + (
            b"?" + query if query else b""
        )
        for base in replicas.in_turn(service):
            client: httpx.AsyncClient = state["client"]
            try:
                upstream = await client.send(
                    client.build_request(
                        request.method,
                        httpx.URL(base).copy_with(raw_path=target),
                        content=body,
                        headers=headers,
                        # a client that asked the service to wait N seconds gets N more
                        timeout=timeout + wait_preference(request.headers.get("prefer")),
                    ),
                    stream=True,
                )
                if not _is_event_stream(upstream):
                    try:
                        await upstream.aread()
                    finally:
                        await upstream.aclose()
            except httpx.LocalProtocolError as error:
                # refused before a byte was sent: the request itself cannot be forwarded
                raise ProblemError(
                    400, "invalid-header", "Invalid header", f"a header cannot be sent on: {error}"
                ) from None
            except httpx.ConnectError:
                logger.warning("%s at %s refused the connection; trying the next", service, base)
                continue
            except httpx.TransportError as error:
                if request.method in SAFE_METHODS:
                    # A read changes nothing: any broken link (a kept-alive connection to a
                    # replica that was restarted, say) is worth another replica.
                    logger.warning(
                        "%s at %s failed a read (%r); trying the next", service, base, error
                    )
                    continue
                # The request may have been applied: only the client can retry it (safely,
                # with its Idempotency-Key), and it is told when.
                raise ProblemError(
                    502,
                    "bad-gateway",
                    "Bad gateway",
                    f"{service} failed while answering: {type(error).__name__}; the request "
                    "may have been applied: send it again (with the same Idempotency-Key)",
                    headers={"Retry-After": "1"},
                ) from None
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            if _is_event_stream(upstream):
                # Events go on as they come (a seat map's stream never ends by itself); the
                # service's pings keep each read under the timeout.
                return StreamingResponse(
                    _relayed(upstream), status_code=upstream.status_code, headers=kept
                )
            return Response(upstream.content, status_code=upstream.status_code, headers=kept)
        raise ProblemError(
            503,
            "service-unavailable",
            "Service unavailable",
            f"no replica of {service} is reachable",
            headers={"Retry-After": "1"},
        )

    @app.websocket("/ws/sessions/{session_id}")
    async def seat_map_socket(websocket: WebSocket, session_id: str) -> None:
        since = websocket.query_params.get("since")
        start = int(since) if since is not None and since.isdigit() else None
        await hub.serve(websocket, session_id, start)

    @app.websocket("/ws/{path:path}")
    async def relay_socket(websocket: WebSocket, path: str) -> None:
        stream = STREAMS.get(path.partition("/")[0], "other")
        await _relay_socket(websocket, stream, paths, replicas, cors_origins, live, closing)

    def drain() -> None:
        closing.set()
        hub.close()

    app.state.drain = drain
    app.state.drained = lambda: live.all_closed(5.0)
    app.state.cors_origins = tuple(cors_origins)
    return app


async def _relay_socket(
    websocket: WebSocket,
    stream: str,
    paths: PathTable,
    replicas: _Upstreams,
    cors_origins: Sequence[str],
    live: LiveMetrics,
    closing: asyncio.Event,
) -> None:
    """A live stream relayed to a replica of the service owning its path, frame by frame
    both ways, ending as either end ends (the service's close code passed on)."""
    if not origin_allowed(websocket, cors_origins):
        await websocket.close(FORBIDDEN, "origin not allowed")  # before accepting: 403
        return
    service = paths.service_for(websocket.url.path)
    query = websocket.scope.get("query_string", b"")
    target = (websocket.scope.get("raw_path") or websocket.url.path.encode()).decode("latin-1")
    if query:
        target += "?" + query.decode("latin-1")
    peer = websocket.client.host if websocket.client else "unknown"
    upstream = None
    for base in replicas.in_turn(service) if service is not None else []:
        try:
            upstream = await connect(
                "ws" + base.removeprefix("http") + target,
                additional_headers={"X-Forwarded-For": peer},
                compression=None,
                proxy=None,
                open_timeout=5,
                max_size=MAX_FRAME_BYTES,
                user_agent_header=None,
            )
            break
        except InvalidStatus as refused:  # the service said no before accepting
            await websocket.close(4000 + refused.response.status_code, "refused")
            return
        except (OSError, TimeoutError, InvalidHandshake) as error:
            logger.warning("%s at %s refused a stream (%r); trying the next", service, base, error)
    await websocket.accept()
    if upstream is None:
        reason = "not found" if service is None else f"no replica of {service} is reachable"
        await websocket.close(NOT_FOUND if service is None else TOO_SLOW, reason)
        return
    socket = LiveSocket(websocket, stream, live)
    live.opened(socket)

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                if isinstance(message, str):
                    await websocket.send_text(message)
                else:
                    await websocket.send_bytes(message)

    async def up() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            with contextlib.suppress(ConnectionClosed):
                if message.get("text") is not None:
                    await upstream.send(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])

    tasks = [
        asyncio.create_task(down()),
        asyncio.create_task(up()),
        asyncio.create_task(closing.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        if closing.is_set():
            code, reason = GOING_AWAY, "the gateway is restarting: reconnect with ?since="
        else:  # the service's own close, passed on (one never sent is a broken link)
            code = upstream.close_code or TOO_SLOW
            reason = upstream.close_reason or ""
            if code in (1005, 1006, 1015):
                code, reason = TOO_SLOW, "the service went away: reconnect with ?since="
        await socket.close(code, reason)
        live.closed(socket)


def _is_event_stream(response: httpx.Response) -> bool:
    return bool(response.headers.get("content-type", "").startswith("text/event-stream"))


async def _relayed(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives, its connection closed however the relay ends (the
    client gone, the service stopping)."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()
