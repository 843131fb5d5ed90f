"""The Redis adapter of the revocations port (see `agora.shared.revocations`)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.shared.revocations import RevocationsUnavailable

__all__ = ["RedisRevocations"]


class RedisRevocations:
    """`redis`'s owner closes it."""

    def __init__(self, redis: Redis, *, prefix: str = "agora:revoked:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def revoke(self, session_id: str, ttl: float) -> None:
        await self._redis.set(self._prefix + session_id, b"1", px=max(1, int(ttl * 1000)))

    async def is_revoked(self, session_id: str) -> bool:
        try:
            return bool(await self._redis.exists(self._prefix + session_id))
        except RedisError as error:  # unreachable, or no pooled connection free in time
            raise RevocationsUnavailable(f"cannot read revoked sessions: {error!r}") from error
