"""The rate limiter port: token buckets keyed by caller, shared by every gateway replica.

`RedisRateLimiter` keeps the buckets in Redis so that all replicas draw from one bucket per key;
`InProcessRateLimiter` keeps them in memory for a single process. Both implement the same
arithmetic, held to `RateLimiter`'s text by `tests/integration/test_gateway_adapters.py`.
`rate_limit_headers` turns a decision into the HTTP fields of a response.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

__all__ = [
    "Decision",
    "InProcessRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "TokenBucket",
    "rate_limit_headers",
]


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


# -- Redis -----------------------------------------------------------------------------------

# One call is one script run, which Redis executes without interleaving any other command: the
# read, the refill, the decision and the write of one bucket are therefore atomic. Time comes
# from the server (TIME), so replicas with skewed clocks agree; under effects replication the
# replicas and the AOF receive the resulting HSET/PEXPIRE, not the clock read.
_TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
else
  local elapsed = math.max(0, now - ts) / 1000000
  tokens = math.min(capacity, tokens + elapsed * rate)
end

local allowed = 0
local retry_after = 0
if tokens >= cost then
  allowed = 1
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
             'ts', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / rate * 1000)))
else
  retry_after = (cost - tokens) / rate
end
local reset_after = (capacity - tokens) / rate

return {allowed, math.floor(tokens),
        string.format('%.17g', retry_after), string.format('%.17g', reset_after)}
"""


class RedisRateLimiter:
    """Buckets in Redis, one hash per key: `<namespace><key>` = {tokens, ts}.

    `tokens` is the (fractional) token count after the last admitted request and `ts` the
    server time of that request in microseconds. The hash expires when the bucket would be full
    again, so idle callers leave nothing behind. Refused requests write nothing.

    The script is registered once and run with EVALSHA (loaded again if the server has
    forgotten it). `now` is ignored (see `RateLimiter.acquire`). `client`'s owner closes it.
    """

    def __init__(self, client: Redis, *, namespace: str = "agora:ratelimit:") -> None:
        self._namespace = namespace
        self._script = client.register_script(_TOKEN_BUCKET_LUA)

    async def acquire(
        self, key: str, policy: TokenBucket, cost: int = 1, now: float | None = None
    ) -> Decision:
        _check_cost(policy, cost)
        allowed, remaining, retry_after, reset_after = await self._script(
            keys=[self._namespace + key],
            args=[policy.capacity, repr(float(policy.refill_per_second)), cost],
        )
        return Decision(
            allowed=bool(allowed),
            remaining=int(remaining),
            retry_after=float(retry_after),
            reset_after=float(reset_after),
        )


# -- in process ------------------------------------------------------------------------------


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
