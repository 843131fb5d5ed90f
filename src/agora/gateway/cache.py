"""The read cache port: bytes by key with a time to live, invalidated by key or by prefix.

The gateway caches rendered reads (a product page, a seat map) and drops them when an event says
they changed. `RedisReadCache` is shared by every replica; `InProcessReadCache` is one process's
bounded LRU. `tests/integration/test_gateway_adapters.py` holds both to `ReadCache`'s text.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["InProcessReadCache", "ReadCache", "RedisReadCache"]


class ReadCache(Protocol):
    """A cache of opaque values. It may forget any entry at any time (memory pressure), so a
    miss is always a valid answer; what it promises is never to answer with a stale value:

    * `get` never returns a value after its `ttl` has run out.
    * Once `delete` returns, `get` misses on every key it removed until the key is set again.
      To drop a family of entries at once, put a generation in their keys and change it.
    * Single-key operations are atomic; nothing is atomic across keys.
    """

    async def get(self, key: str) -> bytes | None:
        """The value set for `key`, or None on a miss."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds (> 0, else `ValueError`), replacing any
        previous value and its ttl."""
        ...

    async def delete(self, *keys: str) -> None:
        """Remove `keys`; absent ones are ignored."""
        ...


def _check_ttl(ttl: float) -> None:
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl}")


class RedisReadCache:
    """Entries are plain strings `<namespace><key>` written with `SET ... PX`, so Redis expires
    them to the millisecond and its `maxmemory` policy may evict them; `delete` uses `UNLINK`
    (memory freed off Redis's main thread). `client` must not decode responses; its owner
    closes it.
    """

    def __init__(self, client: Redis, *, namespace: str = "agora:cache:") -> None:
        self._client = client
        self._namespace = namespace

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._namespace + key)
        if isinstance(value, str):
            raise TypeError("RedisReadCache needs a client that does not decode responses")
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        _check_ttl(ttl)
        await self._client.set(self._namespace + key, value, px=max(1, math.ceil(ttl * 1000)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._client.unlink(*(self._namespace + key for key in keys))


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
