"""A background loop that runs a step whenever it is woken, when the step asks to run again, or
after an idle interval: the shape of the outbox relay, the hold sweeper and the senders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

from agora.messaging.faults import DependencyHealth

__all__ = ["BackgroundLoop"]

logger = logging.getLogger(__name__)


class BackgroundLoop:
    """`step()` returns how many seconds until it wants to run again: 0 to run at once (more
    work is waiting), None to wait for `wake()` or the idle interval.

    The idle interval is only a safety net for work that arrives without a wake-up (rows written
    by another process, timers); the fast path is `wake()`, called right after a commit.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[float | None]],
        *,
        idle: float = 1.0,
        error_delay: float = 1.0,
        dependency_up: Gauge | None = None,
    ) -> None:
        self.name = name
        self.health = DependencyHealth(name, dependency_up)
        self._step = step
        self._idle = idle
        self._error_delay = error_delay
        self._woken = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        """Ask `run()` to finish: it runs the step until nothing is left to do now, then returns."""
        self._stopping = True
        self.wake()

    async def run(self) -> None:
        while True:
            self._woken.clear()
            try:
                delay = await self._step()
            except Exception:
                logger.exception("%s failed; retrying in %.1fs", self.name, self._error_delay)
                if self._stopping:
                    return
                delay = self._error_delay
            if delay == 0:
                continue
            if self._stopping:
                return
            timeout = self._idle if delay is None else min(delay, self._idle)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
