"""The gateway process, when every service runs in processes of its own behind nginx
(`agora.gateway.nginx`): what the entry serves that no one service owns. The seat maps'
WebSocket hub (one stream of a session from inventory, fanned out to every client here), the
web console, the whole API's OpenAPI document and docs, and the health, readiness and metrics
of every replica. Every other path goes from nginx straight to its service."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import httpx
from fastapi import APIRouter, FastAPI, WebSocket
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from agora.console import console_router
from agora.gateway.hub import SeatHub
from agora.messaging import utcnow
from agora.openapi import describe
from agora.services.spec import PathTable
from agora.sockets import LiveMetrics
from agora.web import BODY_TIMEOUT, MAX_BODY_BYTES, Health, Readiness, Unavailable, create_app

__all__ = ["create_gateway"]


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
    client_factory: Callable[[], httpx.AsyncClient] | None = None,
    edge: Callable[[ASGIApp], ASGIApp] | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float = BODY_TIMEOUT,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """`upstreams`: every replica of every service, by service (the hub's inventory, the health
    summed). `routers` are the services' routers, for the OpenAPI document only: nginx sends
    their paths to the services. `edge`: see `create_app`."""
    replicas = _Upstreams(upstreams)
    state: dict[str, httpx.AsyncClient] = {}
    live = LiveMetrics.of(metrics_registry)
    service = paths.service_for("/ws/sessions/x")
    hub = SeatHub(lambda: replicas.in_turn(service) if service else [], live)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["client"] = (client_factory or httpx.AsyncClient)()
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

    @app.websocket("/ws/sessions/{session_id}")
    async def seat_map_socket(websocket: WebSocket, session_id: str) -> None:
        since = websocket.query_params.get("since")
        start = int(since) if since is not None and since.isdigit() else None
        await hub.serve(websocket, session_id, start)

    def drain() -> None:
        hub.close()

    app.state.drain = drain
    app.state.drained = lambda: live.all_closed(5.0)
    app.state.cors_origins = tuple(cors_origins)
    return app
