"""Revoked sessions: access tokens live until they expire, so logging out (or a refresh token
used twice) adds the session to a list every verifier consults until its tokens would expire.

Redis holds the list when several processes verify tokens; the in-process list serves the
embedded default, where one process does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["InProcessRevocations", "RedisRevocations", "Revocations", "RevocationsUnavailable"]


class RevocationsUnavailable(Exception):
    """The list of revoked sessions could not be read: whether a token is still good is
    unknown (answered 503, never as valid)."""


class Revocations(Protocol):
    async def revoke(self, session_id: str, ttl: float) -> None:
        """Refuse tokens of `session_id` for `ttl` seconds (their longest remaining life)."""
        ...

    async def is_revoked(self, session_id: str) -> bool: ...


class InProcessRevocations:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    async def revoke(self, session_id: str, ttl: float) -> None:
        now = self._clock()
        self._until = {sid: until for sid, until in self._until.items() if until > now}
        self._until[session_id] = max(self._until.get(session_id, 0.0), now + ttl)

    async def is_revoked(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > self._clock()


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
