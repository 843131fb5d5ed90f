"""The HTTP application every process serves: routers behind one FastAPI app, problem details for
every error, health and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, computed_field
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora import __version__
from agora.messaging import new_id
from agora.messaging.context import request_scope
from agora.messaging.faults import DATABASE, DISK, transient_fault
from agora.messaging.sql import LockTimeout
from agora.openapi import describe, serve_docs
from agora.problems import PROBLEM_JSON, ProblemError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
BODY_TIMEOUT = 30.0
JSON = "application/json"
# What a 405 probes the path with to say, in `Allow`, every method it serves.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

HTTP_PROBLEMS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("payload-too-large", "Payload too large"),
}


def entity_tags(if_none_match: str | None) -> set[str]:
    """The entity tags of an `If-None-Match` header, weak ones compared as strong (RFC 9110's
    weak comparison, which GET uses)."""
    return {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",") if tag}


class Health(BaseModel):
    """`status` is `ok`, or `degraded` when a figure could not be read (a dependency is away:
    the figures count what could be) or, at the gateway, a replica did not answer. `settled`
    when every outbox is published and every consumer group has caught up: the platform is
    quiescent (what a test or a deployment step can wait for)."""

    status: str
    outbox_backlog: int
    consumer_lag: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def settled(self) -> bool:
        return self.status == "ok" and self.outbox_backlog == 0 and self.consumer_lag == 0


class Unavailable(BaseModel):
    """A dependency one component of a process is waiting for."""

    component: str
    dependency: str
    since: datetime
    error: str


class Readiness(BaseModel):
    """`ready` while every consumer group and background loop of the process (of every replica,
    at the gateway) reaches the dependencies it uses; else what each is waiting for."""

    ready: bool
    unavailable: list[Unavailable]


READY_RETRY_AFTER = 5
"""Seconds a client or balancer is asked to wait before asking a process that is not ready."""


def not_ready(readiness: Readiness) -> ProblemError:
    waiting = ", ".join(f"{u.dependency} ({u.component})" for u in readiness.unavailable)
    return ProblemError(
        503,
        "not-ready",
        "Not ready",
        f"waiting for {waiting or 'a replica to answer'}",
        headers={"Retry-After": str(READY_RETRY_AFTER)},
        unavailable=[u.model_dump(mode="json") for u in readiness.unavailable],
    )


def create_app(
    routers: Sequence[Any],
    metrics_registry: CollectorRegistry,
    *,
    refresh_metrics: Callable[[], Awaitable[None]],
    health: Callable[[], Awaitable[Health]],
    readiness: Callable[[], Awaitable[Readiness]],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    edge: Callable[[ASGIApp], ASGIApp] | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float = BODY_TIMEOUT,
) -> FastAPI:
    """`edge`, for the process that is the entry from outside: the middleware every outside
    request passes first (see `agora.gateway.edge`), with CORS for `cors_origins`. A request's
    body must arrive within `body_timeout` seconds of its headers."""
    app = FastAPI(
        title="Agora",
        version=__version__,
        description=(
            "Marketplace and ticketing backend. Orders run a saga across services: inventory "
            "reserves, payments charges, orders confirms or compensates. Every error is an RFC "
            "9457 problem (`application/problem+json`)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    for router in routers:
        app.include_router(router)
    app.openapi = describe(app)  # type: ignore[method-assign]
    serve_docs(app)
    _install_problem_handlers(app)
    # Outermost last: CORS, request ids, metrics, the edge, the URL's characters, the body
    # deadline and limit, then the routes.
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(_BodyDeadline, seconds=body_timeout)
    app.add_middleware(_RefuseNul)
    if edge is not None:
        app.add_middleware(_Wrapped, wrap=edge)
    app.add_middleware(_HttpMetrics, registry=metrics_registry)
    app.add_middleware(_RequestIds)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
            expose_headers=[
                "Location",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
                "X-Request-Id",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness, and how much work is in flight",
        response_model=Health,
    )
    async def healthz() -> Health:
        return await health()

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: 503 while a dependency does not answer",
        response_model=Readiness,
        responses={
            503: {
                "description": "a consumer group or background loop waits for a dependency "
                "(`unavailable` says which); `Retry-After` in seconds",
                "content": {PROBLEM_JSON: {}},
            }
        },
    )
    async def readyz() -> Readiness:
        state = await readiness()
        if not state.ready:
            raise not_ready(state)
        return state

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        await refresh_metrics()
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _problem(error: ProblemError, request: Request) -> JSONResponse:
    return JSONResponse(
        error.body(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def internal_error() -> ProblemError:
    """The answer to a bug (an unhandled error), wherever it is caught."""
    return ProblemError(
        500, "internal-error", "Internal error", "The server failed; the error was logged."
    )


def request_timeout(detail: str) -> ProblemError:
    """The answer to a client too slow to send its request; the connection is closed after."""
    return ProblemError(
        408, "request-timeout", "Request timeout", detail, headers={"Connection": "close"}
    )


DISK_RETRY_AFTER = 5
"""Seconds a client is asked to wait after a full disk: space comes back when an operator (or a
cleanup) frees it, not within the second a restarted server takes."""


def dependency_unavailable(error: BaseException) -> ProblemError | None:
    """The answer to a request that failed because a dependency did not answer (a transient
    fault, `agora.messaging.faults.transient_fault`): 503 with `Retry-After`, the same request
    succeeds once it answers; 507 when the disk is full, which no retry soon cures (it waits
    for space to be freed). None when `error` is a bug."""
    dependency = transient_fault(error)
    if dependency is None:
        return None
    if dependency == DISK:
        return ProblemError(
            507,
            "insufficient-storage",
            "Insufficient storage",
            "The server's disk is full or failing: nothing was stored; retry once it has space.",
            headers={"Retry-After": str(DISK_RETRY_AFTER)},
        )
    if dependency == DATABASE:
        return ProblemError(
            503,
            "database-unavailable",
            "Database unavailable",
            "The database cannot be reached now; retry shortly.",
            headers={"Retry-After": "1"},
        )
    return ProblemError(
        503,
        "service-unavailable",
        "Service unavailable",
        f"A dependency of this service ({dependency}) did not answer; retry shortly.",
        headers={"Retry-After": "1"},
    )


def _malformed_json(detail: str, **extensions: Any) -> ProblemError:
    return ProblemError(400, "malformed-json", "Malformed JSON", detail, **extensions)


def _unsupported_media_type(request: Request) -> ProblemError:
    # RFC 9110 15.5.16 asks a 415 to say what would be accepted: Accept-Post (W3C LDP) and
    # Accept-Patch (RFC 5789) name it for the method that was refused.
    accepting = {"POST": "Accept-Post", "PATCH": "Accept-Patch"}.get(request.method)
    given = request.headers.get("content-type") or "no Content-Type"
    return ProblemError(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"this route reads a JSON body, sent as {JSON} (got {given})",
        headers={accepting: JSON} if accepting else None,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves `request`'s path with. Starlette's own `Allow` names only
    the methods of the first route that matched the path, and a path is often served by two
    (`GET /api/orders` and `POST /api/orders`)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, error: ProblemError) -> JSONResponse:
        return _problem(error, request)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": [str(part) for part in item.get("loc", ())],
                "message": item.get("msg", ""),
                "type": item.get("type", ""),
            }
            for item in error.errors()
        ]
        if any(item["type"] == "json_invalid" for item in errors):
            problem = _malformed_json("The request body is not valid JSON.", errors=errors)
        elif isinstance(error.body, bytes) and any(e["location"][:1] == ["body"] for e in errors):
            # FastAPI hands a route the raw bytes of a body it was not told is JSON: whatever
            # they hold, the route could not read them.
            problem = _unsupported_media_type(request)
        else:
            problem = ProblemError(
                422,
                "validation-error",
                "Invalid request",
                "; ".join(f"{'.'.join(e['location'])}: {e['message']}" for e in errors),
                errors=errors,
            )
        return _problem(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 400 and isinstance(error.__cause__, ValueError | RecursionError):
            # FastAPI answers a body it cannot decode (not UTF-8, nested past the recursion
            # limit) with a bare 400; to the client it is JSON it cannot send.
            problem = _malformed_json(
                "The request body is not JSON: it is not UTF-8, or it is nested too deep."
            )
            return _problem(problem, request)
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        slug, title = HTTP_PROBLEMS.get(error.status_code, ("http-error", str(error.detail)))
        problem = ProblemError(error.status_code, slug, title, str(error.detail), headers=headers)
        return _problem(problem, request)

    async def on_dependency_error(request: Request, error: Exception) -> JSONResponse:
        problem = dependency_unavailable(error)
        if problem is None:
            raise error  # a bug after all: on to `on_crash`
        # One line, no traceback: an outage fails every request alike.
        logger.warning(
            "%s on %s %s: %s: %s",
            problem.title,
            request.method,
            request.url.path,
            type(error).__name__,
            str(error)[:300],
        )
        return _problem(problem, request)

    # The errors a dependency that went away raises, answered without reaching `on_crash`
    # (where Starlette would log each one again with its traceback).
    for kind in (SQLAlchemyError, LockTimeout, OSError, RedisError, KafkaError):
        app.add_exception_handler(kind, on_dependency_error)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, error: Exception) -> JSONResponse:
        problem = dependency_unavailable(error)  # wrapped in an error of our own
        if problem is not None:
            return _problem(problem, request)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem(internal_error(), request)


class _Wrapped:
    def __init__(self, app: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class _RequestIds:
    """Every request has an id: the caller's `X-Request-Id` if it is a sane one, else a new
    one. It is answered in `X-Request-Id` (nginx, the entry on servers, passes a sane one on or
    makes one), and carried into the events the request causes (`agora.messaging.context`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        # Matched as bytes: a header need not be text at all, and only a sane one is decoded.
        request_id = given.decode("ascii") if REQUEST_ID.match(given) else new_id()
        if given != request_id.encode():
            scope = {
                **scope,
                "headers": [
                    *(item for item in scope["headers"] if item[0] != b"x-request-id"),
                    (b"x-request-id", request_id.encode()),
                ],
            }

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    item for item in message.get("headers", []) if item[0] != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with request_scope(request_id):
            await self.app(scope, receive, send_with_id)


class _RefuseNul:
    """Refuses a NUL character anywhere in the path or the query with a 400 problem, before any
    route sees it: PostgreSQL cannot store or even compare one in text, and no identifier or
    search of ours has one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"])
        ):
            await self.app(scope, receive, send)
            return
        problem = ProblemError(
            400,
            "invalid-character",
            "Invalid character",
            "the URL's path or query holds a NUL character (%00)",
        )
        response = JSONResponse(
            problem.body(instance=scope["path"].replace("\x00", "%00")),
            status_code=400,
            media_type=PROBLEM_JSON,
        )
        await response(scope, receive, send)


class _BodyLimit:
    """Refuses request bodies over `max_bytes` with a 413 problem: at once when the declared
    Content-Length is too large, and as soon as a body streamed without one grows too large."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413,
            "payload-too-large",
            "Payload too large",
            f"request bodies are limited to {self.max_bytes} bytes",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            problem = self._too_large()
            response = JSONResponse(problem.body(), status_code=413, media_type=PROBLEM_JSON)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI turns errors while it reads a body into 400, except this one.
                    raise StarletteHTTPException(413, self._too_large().detail)
            return message

        await self.app(scope, receive_within_limit, send)


class _BodyDeadline:
    """Bounds the time a client takes to send a request's body: reading it past `seconds`
    after the request began fails with a 408 problem, and the connection is closed (a client
    sending a byte now and then would hold it open for as long as it likes otherwise). Once
    the body is in, later reads (a stream waiting for the client to go) wait as long as they
    need."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_done = False

        async def receive_by_deadline() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                problem = request_timeout(
                    f"the request's body did not arrive within {self.seconds:g} s"
                )
                # FastAPI turns errors while it reads a body into 400, except this one.
                raise StarletteHTTPException(408, problem.detail, headers=problem.headers) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, receive_by_deadline, send)


class _HttpMetrics:
    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "agora_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "agora_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - started)
