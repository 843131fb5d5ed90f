"""The in-process adapter of the ratelimit port (see `agora.shared.ratelimit`)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from agora.shared.ratelimit import Decision, TokenBucket, _check_cost

__all__ = ["InProcessRateLimiter"]


@dataclasses.dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    full_at: float


class InProcessRateLimiter:
    """Buckets in a dict, for one process: the same arithmetic as `RedisRateLimiter`.

    `acquire` never awaits, so on one event loop it is atomic without a lock. Memory is bounded:
    every call drops the buckets that have refilled completely, starting from the least recently
    written and stopping at the first that has not; beyond `max_buckets` buckets the least
    recently written one is dropped early, which forgives its caller what it had spent.
    `clock` (monotonic seconds) is what `now` defaults to.
    """

    def __init__(
        self, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be at least 1, got {max_buckets}")
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """Buckets held in memory."""
        return len(self._buckets)

    async def acquire(
        self, key: str, policy: TokenBucket, cost: int = 1, now: float | None = None
    ) -> Decision:
        _check_cost(policy, cost)
        at = self._clock() if now is None else now
        self._drop_full(at)
        capacity, rate = policy.capacity, policy.refill_per_second

        bucket = self._buckets.get(key)
        if bucket is None:
            tokens = float(capacity)
        else:
            elapsed = max(0.0, at - bucket.updated)
            tokens = min(float(capacity), bucket.tokens + elapsed * rate)

        if tokens < cost:
            return Decision(
                allowed=False,
                remaining=math.floor(tokens),
                retry_after=(cost - tokens) / rate,
                reset_after=(capacity - tokens) / rate,
            )
        tokens -= cost
        reset_after = (capacity - tokens) / rate
        self._buckets[key] = _Bucket(tokens=tokens, updated=at, full_at=at + reset_after)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        return Decision(
            allowed=True, remaining=math.floor(tokens), retry_after=0.0, reset_after=reset_after
        )

    def _drop_full(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if bucket.full_at > now:
                return
            del self._buckets[key]
