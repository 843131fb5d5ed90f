"""The read cache port: bytes by key with a time to live, invalidated by key or by prefix.

A service caches rendered reads (a product page, a seat map) and drops them when an event says
they changed. `RedisReadCache` is shared by every replica; `InProcessReadCache` is one process's
bounded LRU. `tests/integration/test_shared_state.py` holds both to `ReadCache`'s text.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ["ReadCache"]


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
