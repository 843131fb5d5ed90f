"""Whether a Redis adapter reaches Redis, for the adapters that carry on without it.

Redis holds what processes share, never a record of its own: an adapter that cannot reach it
degrades (the read cache reads the database, the rate limiter counts in process, the revocation
list answers "unknown") rather than fail the request. `RedisHealth` is how it says so, the way
every component of the platform does (`agora.messaging.faults.DependencyHealth`): one log line
when Redis stops answering and one when it answers again, however many calls fail in between,
and `agora_dependency_up{dependency="redis", component}` 0 while it lasts; besides,
`agora_redis_errors_total{component}` counts every failed call. After a failure the adapter
leaves Redis alone for `pause` seconds, so that a Redis that stalls (each call waiting out its
socket timeout) costs one caller per pause, not every caller.

A degraded adapter does not make its process unready (`/readyz`): the process still serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from agora.messaging.faults import REDIS, DependencyHealth

__all__ = ["RedisHealth", "RedisMetrics"]


class RedisMetrics:
    """The metrics of every `RedisHealth` of one process: `dependency_up` is the platform's
    gauge (`MessagingMetrics.dependency_up`) on the same registry."""

    def __init__(self, registry: CollectorRegistry, dependency_up: Gauge) -> None:
        self.dependency_up = dependency_up
        self.errors = Counter(
            "agora_redis_errors",
            "Calls to Redis that failed (unreachable, timed out), by component",
            ["component"],
            registry=registry,
        )


class RedisHealth:
    """The state of one adapter (`component`: "read cache", "rate limiter", "revocation list")."""

    def __init__(
        self,
        component: str,
        metrics: RedisMetrics | None = None,
        *,
        pause: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self._metrics = metrics
        self._health = DependencyHealth(
            component, None if metrics is None else metrics.dependency_up
        )
        self._pause = pause
        self._clock = clock
        self._retry_at = 0.0
        if metrics is not None:
            metrics.dependency_up.labels(REDIS, component).set(1)

    @property
    def up(self) -> bool:
        return self._health.healthy

    def should_try(self) -> bool:
        """Whether to call Redis now: it answered last time, or the pause after a failure is
        over."""
        return self._health.healthy or self._clock() >= self._retry_at

    def failed(self, error: BaseException) -> None:
        self._retry_at = self._clock() + self._pause
        if self._metrics is not None:
            self._metrics.errors.labels(self.component).inc()
        self._health.down(REDIS, error)

    def succeeded(self) -> None:
        self._health.up(REDIS)
