"""The Redis adapter of the cache port (see `agora.shared.cache`)."""

from __future__ import annotations

import math
import re

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.shared.cache import _check_ttl
from agora.shared.health import RedisHealth, RedisMetrics

__all__ = ["RedisReadCache"]

MAX_PENDING_DELETES = 10_000
"""Keys a cache cut off from Redis remembers to delete; beyond, it drops its whole namespace
when Redis answers again."""


class RedisReadCache:
    """Entries are plain strings `<namespace><key>` written with `SET ... PX`, so Redis expires
    them to the millisecond and its `maxmemory` policy may evict them; `delete` uses `UNLINK`
    (memory freed off Redis's main thread). `client` must not decode responses; its owner
    closes it.

    Redis that does not answer is no error: `get` misses (the caller reads the database) and
    `set` stores nothing (see `agora.shared.health`). A `delete` (or a `set`, which may have
    been meant to replace a value) that did not reach Redis is remembered, and done before the
    cache answers from Redis again: until then `get` misses, so an entry whose deletion was
    lost is never served. (What another process failed to delete, it deletes itself when it
    reaches Redis again; if it died meanwhile, its entries live out their ttl.)
    """

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str = "agora:cache:",
        metrics: RedisMetrics | None = None,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._health = RedisHealth("read cache", metrics)
        self._pending: set[str] = set()
        self._drop_namespace = False

    async def get(self, key: str) -> bytes | None:
        if not await self._reachable():
            return None
        try:
            value = await self._client.get(self._namespace + key)
        except RedisError as error:
            self._health.failed(error)
            return None
        self._health.succeeded()
        if isinstance(value, str):
            raise TypeError("RedisReadCache needs a client that does not decode responses")
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        _check_ttl(ttl)
        if await self._reachable():
            try:
                await self._client.set(
                    self._namespace + key, value, px=max(1, math.ceil(ttl * 1000))
                )
            except RedisError as error:
                self._health.failed(error)
            else:
                self._health.succeeded()
                return
        self._delete_later([key])

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        if await self._reachable():
            try:
                await self._client.unlink(*(self._namespace + key for key in keys))
            except RedisError as error:
                self._health.failed(error)
            else:
                self._health.succeeded()
                return
        self._delete_later(keys)

    def _delete_later(self, keys: tuple[str, ...] | list[str]) -> None:
        if self._drop_namespace:
            return
        self._pending.update(keys)
        if len(self._pending) > MAX_PENDING_DELETES:
            self._pending.clear()
            self._drop_namespace = True

    async def _reachable(self) -> bool:
        """Whether to use Redis now: it answers, and what was not deleted while it did not
        has been deleted since."""
        if not self._health.should_try():
            return False
        if not (self._pending or self._drop_namespace):
            return True
        keys = list(self._pending)
        dropping, self._drop_namespace = self._drop_namespace, False
        try:
            if dropping:
                pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._namespace) + "*"
                async for found in self._client.scan_iter(match=pattern, count=1000):
                    await self._client.unlink(found)
            elif keys:
                await self._client.unlink(*(self._namespace + key for key in keys))
        except RedisError as error:
            self._drop_namespace = self._drop_namespace or dropping
            self._health.failed(error)
            return False
        self._pending.difference_update(keys)
        self._health.succeeded()
        return True
