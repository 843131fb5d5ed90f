"""The in-process adapter of the cache port (see `agora.shared.cache`)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from agora.shared.cache import _check_ttl

__all__ = ["InProcessReadCache"]


class InProcessReadCache:
    """A least-recently-used cache of at most `max_entries` entries, for one process.

    An expired entry is dropped when it is read; the LRU bound caps what expired but unread
    entries can hold. `clock` (monotonic seconds) decides expiry.
    """

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        """Entries held in memory, expired ones included until they are read or evicted."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        _check_ttl(ttl)
        self._entries[key] = (value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)
