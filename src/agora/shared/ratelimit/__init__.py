"""The rate limiter port: token buckets keyed by caller, shared by every process.

`RedisRateLimiter` keeps the buckets in Redis so that all replicas draw from one bucket per key;
`InProcessRateLimiter` keeps them in memory for a single process. Both implement the same
arithmetic, held to `RateLimiter`'s text by `tests/integration/test_shared_state.py`.
`rate_limit_headers` turns a decision into the HTTP fields of a response.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

__all__ = ["Decision", "RateLimiter", "TokenBucket", "rate_limit_headers"]


@dataclasses.dataclass(frozen=True, slots=True)
class TokenBucket:
    """A bucket of `capacity` tokens that refills continuously at `refill_per_second`.

    A new (or long idle) bucket is full, so a caller may burst `capacity` requests at once and
    then sustain `refill_per_second` on average.
    """

    capacity: int
    refill_per_second: float

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")
        if not (math.isfinite(self.refill_per_second) and self.refill_per_second > 0):
            raise ValueError(f"refill_per_second must be > 0, got {self.refill_per_second}")

    @property
    def window(self) -> float:
        """Seconds an empty bucket takes to fill up again."""
        return self.capacity / self.refill_per_second


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one `RateLimiter.acquire`.

    `remaining`: whole tokens left after this request. `retry_after`: seconds until the same
    request would be admitted (0 when `allowed`). `reset_after`: seconds until the bucket is
    full again if nothing more is taken.
    """

    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float


class RateLimiter(Protocol):
    """Token buckets, one per key.

    Guarantees, per key:

    * Atomic: concurrent `acquire` calls (from any number of tasks or replicas sharing the
      backend) are applied one after another, so no more than `capacity` tokens plus what has
      refilled since are ever admitted.
    * A request is admitted whole or not at all: an admitted request takes `cost` tokens, a
      refused one takes none.
    * Idle buckets do not pile up: a bucket that has refilled completely is indistinguishable
      from one never used, so adapters drop it (each adapter says when).

    A key is one bucket whatever the policy; callers that apply several policies to one caller
    use one key per policy.
    """

    async def acquire(
        self, key: str, policy: TokenBucket, cost: int = 1, now: float | None = None
    ) -> Decision:
        """Take `cost` tokens (1 <= cost <= policy.capacity, else `ValueError`) from `key`'s
        bucket if it holds that many.

        `now` is a reading of the limiter's own clock, for deterministic tests of adapters that
        keep time themselves (`InProcessRateLimiter`); `None` reads the clock.
        `RedisRateLimiter` ignores it: its clock is always the Redis server's.
        """
        ...


def rate_limit_headers(
    decision: Decision, policy: TokenBucket, *, name: str = "default"
) -> dict[str, str]:
    """The response fields for `decision` under `policy`, per draft-ietf-httpapi-ratelimit-headers
    (-11): `RateLimit-Policy`, `RateLimit`, and `Retry-After` when the request was refused.

    * `RateLimit-Policy: "<name>";q=<capacity>;w=<seconds to refill an empty bucket>`.
    * `RateLimit: "<name>";r=<remaining>;t=<seconds>`, where `t`, the effective window, is the
      time until the bucket is full again: within it the client cannot outrun the advertised
      quota by spreading `r` over `t` (conservative, as the draft allows).
    * A refused request gets `Retry-After: <seconds>` and a `t` equal to it, since the draft
      asks that Retry-After not point before the end of the effective window.

    Seconds are whole (delay-seconds), rounded up so that a client obeying them is not refused
    for being early.
    """
    if not all(" " <= char <= "~" for char in name):
        raise ValueError(f"policy name must be printable ASCII, got {name!r}")
    item = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    window = max(1, math.ceil(policy.window))
    headers = {"RateLimit-Policy": f"{item};q={policy.capacity};w={window}"}
    if decision.allowed:
        effective_window = math.ceil(decision.reset_after)
    else:
        retry_after = max(1, math.ceil(decision.retry_after))
        headers["Retry-After"] = str(retry_after)
        effective_window = retry_after
    headers["RateLimit"] = f"{item};r={max(0, decision.remaining)};t={max(0, effective_window)}"
    return headers


def _check_cost(policy: TokenBucket, cost: int) -> None:
    if not 1 <= cost <= policy.capacity:
        raise ValueError(f"cost must be within 1..{policy.capacity}, got {cost}")
