"""The Redis adapter of the cache port (see `agora.shared.cache`)."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from agora.shared.cache import _check_ttl

__all__ = ["RedisReadCache"]


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
