"""The Redis adapter of the revocations port (see `agora.shared.revocations`)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.shared.health import RedisHealth, RedisMetrics
from agora.shared.revocations import RevocationsUnavailable, RevokedSessions

__all__ = ["RedisRevocations"]

T = TypeVar("T")

PUBLISH_TOKEN_TTL_MS = 60_000
"""How long a publish may take between reading the record and writing the list."""

# Applied only while the publisher's token is still there: a restart or flush after the token
# was set (so possibly after the record was read, and after some revocation it holds was
# written to the list and lost) removed it, and the list is then not marked complete. Keys:
# the token, the mark, then the sessions; arguments: the token, then each session's ttl (ms).
_PUBLISH_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[i - 1])
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
"""


class RedisRevocations:
    """`<prefix><session id>` per revoked session, expiring with its tokens; `<prefix>.complete`
    marks the list complete (Redis loses it with the entries, on a restart or a flush: the
    sessions never carry a `.`). `redis`'s owner closes it.

    The list must not be evicted: run Redis with `maxmemory-policy noeviction`, or with a
    `volatile-*` policy and memory to spare (the mark has no ttl, so it is never evicted while
    an entry might be)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "agora:revoked:",
        metrics: RedisMetrics | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._complete = prefix + ".complete"
        self._publishing = prefix + ".publishing"
        self._publish = redis.register_script(_PUBLISH_LUA)
        self._health = RedisHealth("revocation list", metrics)

    async def revoke(self, session_id: str, ttl: float) -> None:
        await self._call(
            lambda: self._redis.set(self._prefix + session_id, b"1", px=max(1, int(ttl * 1000)))
        )

    async def is_revoked(self, session_id: str) -> bool:
        complete, revoked = await self._call(
            lambda: self._redis.mget([self._complete, self._prefix + session_id])
        )
        if complete is None:
            raise RevocationsUnavailable(
                "the revoked sessions are not published since Redis lost them (restarted or "
                "flushed): identity publishes them again"
            )
        return revoked is not None

    async def is_complete(self) -> bool:
        return bool(await self._call(lambda: self._redis.exists(self._complete)))

    async def publish(self, read_record: RevokedSessions) -> bool:
        token = secrets.token_hex(16)
        await self._call(lambda: self._redis.set(self._publishing, token, px=PUBLISH_TOKEN_TTL_MS))
        revoked = await read_record()
        keys = [self._publishing, self._complete, *(self._prefix + sid for sid, _ in revoked)]
        ttls = [max(1, int(ttl * 1000)) for _, ttl in revoked]
        applied = await self._call(lambda: self._publish(keys=keys, args=[token, *ttls]))
        return bool(applied)

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        if not self._health.should_try():
            raise RevocationsUnavailable("Redis did not answer moments ago")
        try:
            result = await command()
        except RedisError as error:  # unreachable, or no pooled connection free in time
            self._health.failed(error)
            raise RevocationsUnavailable(f"cannot reach revoked sessions: {error!r}") from error
        self._health.succeeded()
        return result
