"""The Redis adapter of the ratelimit port (see `agora.shared.ratelimit`)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agora.shared.health import RedisHealth, RedisMetrics
from agora.shared.ratelimit import Decision, TokenBucket, _check_cost
from agora.shared.ratelimit.in_process import InProcessRateLimiter

__all__ = ["RedisRateLimiter"]

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

    Redis that does not answer fails open to buckets of this process (an `InProcessRateLimiter`,
    the same arithmetic), so no request fails for want of the shared buckets and every caller
    is still limited, per process: with N replicas a caller may get up to N times its quota
    while it lasts. Buckets start full on either side of the switch (see
    `agora.shared.health` for the log lines and metrics).
    """

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str = "agora:ratelimit:",
        metrics: RedisMetrics | None = None,
    ) -> None:
        self._namespace = namespace
        self._script = client.register_script(_TOKEN_BUCKET_LUA)
        self._fallback = InProcessRateLimiter()
        self._health = RedisHealth("rate limiter", metrics)

    async def acquire(
        self, key: str, policy: TokenBucket, cost: int = 1, now: float | None = None
    ) -> Decision:
        _check_cost(policy, cost)
        if not self._health.should_try():
            return await self._fallback.acquire(key, policy, cost)
        try:
            allowed, remaining, retry_after, reset_after = await self._script(
                keys=[self._namespace + key],
                args=[policy.capacity, repr(float(policy.refill_per_second)), cost],
            )
        except RedisError as error:
            self._health.failed(error)
            return await self._fallback.acquire(key, policy, cost)
        self._health.succeeded()
        return Decision(
            allowed=bool(allowed),
            remaining=int(remaining),
            retry_after=float(retry_after),
            reset_after=float(reset_after),
        )
