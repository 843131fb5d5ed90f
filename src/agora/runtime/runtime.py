"""A runtime: some or all of Agora's services in one process, over the backends the settings
name (the embedded log and SQLite files by default; Kafka and PostgreSQL when configured).

`agora up` on the embedded default runs every service here; `agora serve SERVICE` runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.types import ASGIApp

from agora import contracts
from agora.auth import HttpKeySource, KeySource, KeysUnavailable, TokenVerifier
from agora.console import console_router
from agora.gateway.edge import EdgeMiddleware, EdgePolicy
from agora.messaging import (
    BackgroundLoop,
    ConsumerRunner,
    Infrastructure,
    MessageLog,
    MessagingMetrics,
    Service,
    dead_letter_topic,
    is_transient,
)
from agora.messaging.backends.embedded import EmbeddedLog
from agora.messaging.backends.kafka import KafkaLog
from agora.services.registry import SERVICES
from agora.services.spec import PathTable, ServiceContext, ServiceSpec
from agora.settings import Settings
from agora.shared.cache import ReadCache
from agora.shared.cache.in_process import InProcessReadCache
from agora.shared.cache.redis import RedisReadCache
from agora.shared.health import RedisMetrics
from agora.shared.ratelimit import RateLimiter, TokenBucket
from agora.shared.ratelimit.in_process import InProcessRateLimiter
from agora.shared.ratelimit.redis import RedisRateLimiter
from agora.shared.revocations import Revocations
from agora.shared.revocations.in_process import InProcessRevocations
from agora.shared.revocations.redis import RedisRevocations
from agora.sockets import LiveMetrics
from agora.web import Health, Readiness, Unavailable, create_app

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 20
"""Below this much free space in the data folder the embedded default is not ready: SQLite
and the log cannot be trusted to find room for a transaction."""

SERVICE_NAMES = tuple(spec.name for spec in SERVICES)


class DataDirInUse(Exception):
    """Another process holds the data folder: its SQLite files take one process at a time."""

    @classmethod
    def check(cls, data_dir: Path) -> None:
        """Raise `DataDirInUse` if another process holds `data_dir` now. A look before starting,
        so that the user hears of it before anything is announced; the runtime still takes the
        lock itself when it starts."""
        try:
            handle = (data_dir / "agora.lock").open("rb")
        except FileNotFoundError:
            return
        with handle:  # closing it releases the lock taken to look
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise cls(
                    f"another agora process is using {data_dir.resolve()}; stop it or choose "
                    "another --data-dir"
                ) from None


def build_log(settings: Settings) -> MessageLog:
    if settings.kafka_bootstrap:
        return KafkaLog(
            settings.kafka_bootstrap,
            default_partitions=settings.partitions,
            replication_factor=settings.kafka_replication_factor,
            client_id=f"agora-{os.getpid()}",
            namespace=settings.kafka_namespace,
            request_timeout=settings.kafka_request_timeout_seconds,
        )
    return EmbeddedLog(settings.data_dir / "bus.db", default_partitions=settings.partitions)


def redis_prefix(settings: Settings, what: str) -> str:
    """Keys of `what` in the shared Redis, apart per namespace (as Kafka topics are)."""
    namespace = f"{settings.kafka_namespace}:" if settings.kafka_namespace else ""
    return f"agora:{namespace}{what}:"


def build_redis(settings: Settings) -> Redis | None:
    """The process's one Redis client, or None (in-process twins). Its pool holds at most
    `redis_max_connections`; a caller finding them all busy waits for one (up to 5 s) instead of
    failing, so a burst of requests queues rather than answering 500. Connecting and every
    command are bounded by `redis_timeout_seconds` (a pub/sub reader waiting for messages must
    pass its own read timeout)."""
    if not settings.redis_url:
        return None
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=5,
        # A Redis that stalls fails a command after this, as one that is down does at once:
        # the adapters then degrade (`agora.shared.health`) instead of holding the request.
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes them


def build_revocations(
    settings: Settings, redis: Redis | None, metrics: RedisMetrics | None = None
) -> Revocations:
    """Revoked sessions: in Redis when configured (shared by every process), else in process."""
    if redis is not None:
        return RedisRevocations(redis, prefix=redis_prefix(settings, "revoked"), metrics=metrics)
    return InProcessRevocations()


def build_edge(
    settings: Settings,
    redis: Redis | None,
    verifier: TokenVerifier,
    metrics: RedisMetrics | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """The entry's middleware (`agora.gateway.edge`), limits kept in Redis when configured."""
    limiter: RateLimiter = (
        RedisRateLimiter(redis, namespace=redis_prefix(settings, "ratelimit"), metrics=metrics)
        if redis is not None
        else InProcessRateLimiter()
    )
    policy = edge_policy(settings)
    return lambda app: EdgeMiddleware(app, verifier=verifier, limiter=limiter, policy=policy)


def edge_policy(settings: Settings) -> EdgePolicy:
    def per_minute(count: int) -> TokenBucket:
        return TokenBucket(capacity=count, refill_per_second=count / 60)

    return EdgePolicy(
        anonymous=per_minute(settings.rate_limit_anonymous),
        free=per_minute(settings.rate_limit_free),
        premium=per_minute(settings.rate_limit_premium),
        rate_limits=settings.rate_limits,
    )


class Shared:
    """The process's shared state (`agora.services.spec.SharedState`): in Redis when the
    settings name one, else in-process twins."""

    def __init__(
        self, settings: Settings, redis: Redis | None, redis_metrics: RedisMetrics
    ) -> None:
        self._settings = settings
        self._redis = redis
        self.redis_metrics = redis_metrics
        self.revocations = build_revocations(settings, redis, self.redis_metrics)

    def read_cache(self, namespace: str) -> ReadCache:
        if self._redis is not None:
            return RedisReadCache(
                self._redis,
                namespace=redis_prefix(self._settings, namespace),
                metrics=self.redis_metrics,
            )
        return InProcessReadCache()


async def _no_key_source() -> Mapping[str, Any]:
    raise KeysUnavailable(
        "AGORA_JWKS_URL is not set and the identity service is not in this process"
    )


def build_services(
    context: ServiceContext, names: Sequence[str], specs: Sequence[ServiceSpec] = SERVICES
) -> list[Service]:
    """The named services, each from its spec's bootstrap."""
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown services {unknown}; services: {', '.join(by_name)}")
    return [by_name[name].bootstrap(context) for name in names]


def build_gateway(
    settings: Settings,
    specs: Sequence[ServiceSpec] = SERVICES,
    *,
    client_factory: Callable[[], httpx.AsyncClient] | None = None,
) -> FastAPI:
    """The gateway process (`agora.gateway.app`): the hub, the console, the docs and the
    deployment's health, its replicas reached with `client_factory`'s client (by default one of
    its own over HTTP)."""
    from agora.gateway.app import create_gateway

    redis = build_redis(settings)
    registry = CollectorRegistry()
    messaging_metrics = MessagingMetrics(registry)
    redis_metrics = RedisMetrics(registry, messaging_metrics.dependency_up)
    source: KeySource = HttpKeySource(settings.jwks_url) if settings.jwks_url else _no_key_source
    verifier = TokenVerifier(
        source,
        revocations=build_revocations(settings, redis, redis_metrics),
        clocks=messaging_metrics.peer_clocks,
    )

    async def close() -> None:
        if redis is not None:
            await redis.aclose()

    return create_gateway(
        settings.upstreams,
        PathTable(specs),
        [spec.router() for spec in specs],
        registry,
        edge=build_edge(settings, redis, verifier, redis_metrics),
        cors_origins=settings.cors_origins,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.request_body_timeout_seconds,
        on_close=close,
        client_factory=client_factory,
    )


class Runtime:
    def __init__(
        self,
        settings: Settings,
        names: Sequence[str] | None = None,
        *,
        specs: Sequence[ServiceSpec] = SERVICES,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self._short_since: dt.datetime | None = None
        self.metrics_registry = CollectorRegistry()
        messaging_metrics = MessagingMetrics(self.metrics_registry)
        self.log = build_log(settings)
        infrastructure = Infrastructure(
            log=self.log,
            registry=contracts.registry(),
            metrics=messaging_metrics,
            metrics_registry=self.metrics_registry,
            database_url=settings.database_url,
            consumer_options=settings.consumer_options,
            database_timeouts=settings.database_timeouts,
        )
        # One client for everything this process keeps in Redis (None: in-process twins).
        self.redis = build_redis(settings)
        shared = Shared(
            settings,
            self.redis,
            RedisMetrics(self.metrics_registry, messaging_metrics.dependency_up),
        )
        self.redis_metrics = shared.redis_metrics
        self.revocations = shared.revocations
        self.specs = [spec for spec in specs if names is None or spec.name in names]
        self.services = build_services(
            ServiceContext(infrastructure, settings, shared),
            [spec.name for spec in specs] if names is None else names,
            specs,
        )
        self.token_verifier = TokenVerifier(
            self._key_source(),
            revocations=self.revocations,
            clocks=messaging_metrics.peer_clocks,
        )
        self._lock: IO[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loops: list[BackgroundLoop] = []
        self._runners: list[ConsumerRunner] = []

    def _key_source(self) -> KeySource:
        """Identity's keys: read in process when identity runs here, else fetched."""
        for service in self.services:
            local: KeySource | None = getattr(service, "key_set", None)
            if local is not None:
                return local
        if self.settings.jwks_url:
            return HttpKeySource(self.settings.jwks_url)
        return _no_key_source

    def _take_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / "agora.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DataDirInUse(
                f"another agora process is using {self.data_dir.resolve()}; stop it or choose "
                "another --data-dir"
            ) from None
        lock.write(str(os.getpid()).encode())
        lock.flush()
        self._lock = lock

    async def start(self) -> None:
        if isinstance(self.log, EmbeddedLog) or not self.settings.database_url_template:
            self._take_data_dir()  # SQLite files: one process at a time
        await self.log.open()
        topics = [*contracts.TOPICS, *(dead_letter_topic(t) for t in contracts.TOPICS)]
        await self.log.create_topics(topics, self.settings.partitions)
        for service in self.services:
            if self.settings.should_migrate_on_start:
                await service.migrate()
            await service.platform.start()
            await service.start()
        for service in self.services:
            self._loops.extend(service.platform.loops)
            self._runners.extend(service.platform.runners)
        for loop in self._loops:
            self._tasks.append(asyncio.create_task(loop.run(), name=loop.name))
        for runner in self._runners:
            self._tasks.append(asyncio.create_task(runner.run(), name=f"consumer {runner.group}"))
        logger.info(
            "started %s: %d consumer groups, %d background loops",
            ", ".join(service.name for service in self.services),
            len(self._runners),
            len(self._loops),
        )

    async def stop(self, timeout: float = 10.0) -> None:
        """Drain: consumers finish and commit their batch, then loops run dry, then close."""
        for runner in self._runners:
            runner.stop()
        for loop in self._loops:
            loop.stop()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("%s ended with %r", task.get_name(), task.exception())
        for service in self.services:
            await service.platform.db.dispose()
        await self.log.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def drain(self) -> None:
        """The server stops taking requests: requests held open (long polls) answer now, so
        the graceful shutdown does not wait for them or cut them off."""
        for service in self.services:
            service.drain()

    async def drained(self, timeout: float = 5.0) -> None:
        """Return once every live stream has sent its close frame (after `drain`), or after
        `timeout` seconds: the server then closes what is left."""
        await LiveMetrics.of(self.metrics_registry).all_closed(timeout)

    async def refresh_metrics(self) -> None:
        await self.health()
        for service in self.services:
            await service.refresh_metrics()

    async def health(self) -> Health:
        """Outbox backlog and consumer lag now (also setting their gauges). A figure that a
        dependency away keeps from being read is left out and the status is `degraded`: the
        process itself is alive (a liveness probe must not restart it for an outage; readiness
        says what it waits for)."""
        backlog, lag, degraded = 0, 0, False
        for service in self.services:
            try:
                count = await service.platform.outbox_backlog()
            except Exception as error:
                if not is_transient(error):
                    raise
                degraded = True
                continue
            service.platform.metrics.outbox_backlog.labels(service.name).set(count)
            backlog += count
        for runner in self._runners:
            try:
                lag += await runner.report_lag()
            except Exception as error:
                if not is_transient(error):
                    raise
                degraded = True
        return Health(
            status="degraded" if degraded else "ok", outbox_backlog=backlog, consumer_lag=lag
        )

    async def readiness(self) -> Readiness:
        """Ready unless a consumer group or background loop waits for a dependency, or the
        data folder of the embedded files has no room left (seen at once, whether or not
        anything has tried to write since)."""
        unavailable = [
            Unavailable(
                component=health.component,
                dependency=outage.dependency,
                since=dt.datetime.fromtimestamp(outage.since, dt.UTC),
                error=outage.error,
            )
            for health in [*(r.health for r in self._runners), *(lp.health for lp in self._loops)]
            for outage in list(health.outages.values())
        ]
        short = self._data_folder_short()
        if short is not None:
            unavailable.append(short)
        return Readiness(ready=not unavailable, unavailable=unavailable)

    def _data_folder_short(self) -> Unavailable | None:
        """The data folder as unavailable while it has under `MIN_FREE_BYTES` free, if the
        databases or the log are files in it (the embedded default)."""
        if self.settings.database_url_template and self.settings.kafka_bootstrap:
            return None
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError as error:
            free, reason = 0, f"{self.data_dir}: {error}"
        else:
            reason = f"{free} bytes free in {self.data_dir}"
        if free >= MIN_FREE_BYTES:
            self._short_since = None
            return None
        if self._short_since is None:
            self._short_since = dt.datetime.now(dt.UTC)
        return Unavailable(
            component="data-folder", dependency="disk", since=self._short_since, error=reason
        )

    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = create_app(
            [spec.router() for spec in self.specs],
            self.metrics_registry,
            refresh_metrics=self.refresh_metrics,
            health=self.health,
            readiness=self.readiness,
            lifespan=lifespan,
            # Every process is an entry: behind nginx on servers, or the only one.
            edge=build_edge(self.settings, self.redis, self.token_verifier, self.redis_metrics),
            cors_origins=self.settings.cors_origins,
            max_body_bytes=self.settings.max_body_bytes,
            body_timeout=self.settings.request_body_timeout_seconds,
        )
        if not self.settings.behind_proxy:
            app.include_router(console_router())
        app.state.services = {service.name: service for service in self.services}
        app.state.token_verifier = self.token_verifier
        app.state.behind_proxy = self.settings.behind_proxy
        app.state.drain = self.drain
        app.state.drained = self.drained
        app.state.cors_origins = tuple(self.settings.cors_origins)
        return app
