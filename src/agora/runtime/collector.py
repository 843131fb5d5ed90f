"""The cyclic garbage collector, tuned for a server that holds many long-lived connections.

Each open WebSocket keeps its whole ASGI stack alive (some forty coroutine frames, their locals,
the connection's protocol objects): with a thousand watchers of a seat map, a full collection
walks about 300,000 objects that are not garbage and stops the process for 200 ms, every few
seconds under load. So what survives a full collection is frozen (`gc.freeze`): the next full
collection walks only what is newer, a few milliseconds' work.

What is frozen is not collected: a cycle that becomes garbage after it was frozen stays until it
is scanned again. Once the frozen objects have doubled since the last complete scan, they are
thawed and the next full collection is complete again (one long pause, rarely): memory held by
such garbage stays bounded by what is alive.
"""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["Collector"]


class Collector:
    """Freezes what each full collection leaves, and thaws it all once it has doubled."""

    def __init__(self) -> None:
        self.scanned = 0
        """Objects frozen after the last complete scan."""
        self._complete_next = False

    def install(self) -> None:
        """Freeze what start-up made (modules, compiled statements, models: alive as long as
        the process) and take over every full collection after it."""
        gc.collect()
        gc.freeze()
        self.scanned = gc.get_freeze_count()
        if self._after not in gc.callbacks:
            gc.callbacks.append(self._after)

    def uninstall(self) -> None:
        if self._after in gc.callbacks:
            gc.callbacks.remove(self._after)
        gc.unfreeze()

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        if self._complete_next:  # this collection scanned everything: a new base
            self._complete_next = False
            gc.freeze()
            self.scanned = gc.get_freeze_count()
        elif gc.get_freeze_count() > 2 * self.scanned:
            gc.unfreeze()  # the next full collection scans everything once
            self._complete_next = True
        else:
            gc.freeze()
