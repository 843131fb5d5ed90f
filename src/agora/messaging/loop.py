"""A background loop that runs a step whenever it is woken, when the step asks to run again, or
after an idle interval: the shape of the outbox relay, the hold sweeper and the senders.

A step that fails with a transient fault (`agora.messaging.faults`: the database or the log did
not answer) is tried again with capped exponential backoff until it succeeds, the loop reporting
itself unhealthy meanwhile (one log line when the dependency goes, one when it is back). Any
other error is logged with its traceback and the step is tried again after `error_delay`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

from agora.messaging.faults import Backoff, DependencyHealth, transient_fault

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
        backoff: Backoff | None = None,
        dependency_up: Gauge | None = None,
        health: DependencyHealth | None = None,
    ) -> None:
        """`health`: the step's own, if it reports on dependencies itself (else the loop's)."""
        self.name = name
        self.health = health or DependencyHealth(name, dependency_up)
        self._backoff = backoff or Backoff(first=0.1, cap=5.0)
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
        faults = 0  # transient faults in a row
        while True:
            self._woken.clear()
            try:
                delay = await self._step()
            except Exception as error:
                dependency = transient_fault(error)
                if self._stopping:
                    logger.warning("%s failed while stopping", self.name, exc_info=error)
                    return
                if dependency is None:
                    logger.exception("%s failed; retrying in %.1fs", self.name, self._error_delay)
                    delay = self._error_delay
                else:
                    faults += 1
                    self.health.down(dependency, error)
                    delay = self._backoff.delay(faults)
            else:
                if faults:
                    faults = 0
                    self.health.up()
            if delay == 0:
                continue
            if self._stopping:
                return
            timeout = self._idle if delay is None else min(delay, self._idle)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
