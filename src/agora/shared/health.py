"""Whether a Redis adapter reaches Redis, for the adapters that carry on without it.

Redis holds what processes share, never a record of its own: an adapter that cannot reach it
degrades (the read cache reads the database, the rate limiter counts in process) rather than
fail the request. `RedisHealth` is how it says so: one log line when Redis stops answering and
one when it answers again, however many calls fail in between; `agora_redis_errors_total`
counts every failed call and `agora_redis_up` is 0 while it lasts, both labelled by port. After
a failure the adapter leaves Redis alone for `pause` seconds, so that a Redis that stalls (each
call waiting out its socket timeout) costs one caller per pause, not every caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["RedisHealth", "RedisMetrics"]

logger = logging.getLogger(__name__)


class RedisMetrics:
    """The metrics of every `RedisHealth` of one process (one registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.errors = Counter(
            "agora_redis_errors",
            "Calls to Redis that failed (unreachable, timed out), by port",
            ["port"],
            registry=registry,
        )
        self.up = Gauge(
            "agora_redis_up",
            "1 while the port reaches Redis, 0 from a failed call until one succeeds",
            ["port"],
            registry=registry,
        )


class RedisHealth:
    """The state of one port's adapter (`port`: cache, ratelimit, revocations)."""

    def __init__(
        self,
        port: str,
        what_degrades: str,
        metrics: RedisMetrics | None = None,
        *,
        pause: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self._what_degrades = what_degrades
        self._metrics = metrics
        self._pause = pause
        self._clock = clock
        self._down_since: float | None = None
        self._retry_at = 0.0
        if metrics is not None:
            metrics.up.labels(port).set(1)

    @property
    def up(self) -> bool:
        return self._down_since is None

    def should_try(self) -> bool:
        """Whether to call Redis now: it answered last time, or the pause after a failure is
        over."""
        return self._down_since is None or self._clock() >= self._retry_at

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        self._retry_at = now + self._pause
        if self._metrics is not None:
            self._metrics.errors.labels(self.port).inc()
        if self._down_since is not None:
            return
        self._down_since = now
        if self._metrics is not None:
            self._metrics.up.labels(self.port).set(0)
        logger.warning(
            "Redis unavailable to the %s (%s: %s); %s",
            self.port,
            type(error).__name__,
            str(error)[:300],
            self._what_degrades,
        )

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        logger.info(
            "Redis available to the %s again after %.1f s",
            self.port,
            self._clock() - self._down_since,
        )
        self._down_since = None
        if self._metrics is not None:
            self._metrics.up.labels(self.port).set(1)
