"""The contracts of the gateway's ports (`agora.gateway`), for every adapter.

One abstract class per port holds the tests: `RateLimiterContract`, `ReadCacheContract`,
`FanoutContract`. Each adapter subclasses it once and implements its one factory method; a
subclass may add tests of what only its adapter promises (memory bounds, key layout). The Redis
classes run against the server of `agora infra` and fail, never skip, when it cannot be reached.

Every test names its keys and channels with a fresh uuid, so runs can share one Redis. Nothing
sleeps to synchronise: waits poll a condition until a deadline.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
import redis
from redis.asyncio import Redis

from agora import infra
from agora.runtime.runtime import build_redis, build_revocations
from agora.settings import Settings
from agora.shared.cache import ReadCache
from agora.shared.cache.in_process import InProcessReadCache
from agora.shared.cache.redis import RedisReadCache
from agora.shared.fanout import Fanout
from agora.shared.fanout.in_process import InProcessFanout
from agora.shared.fanout.redis import RedisFanout
from agora.shared.ratelimit import Decision, RateLimiter, TokenBucket, rate_limit_headers
from agora.shared.ratelimit.in_process import InProcessRateLimiter
from agora.shared.ratelimit.redis import RedisRateLimiter

DEADLINE = 10.0
"""Seconds any one wait may take before the test fails."""

T = TypeVar("T")


def unique(name: str) -> str:
    return f"test-{name}-{uuid.uuid4().hex[:12]}"


async def poll(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Call `probe` until `done(result)` holds and return that result; fail at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last saw {result!r}")
        await asyncio.sleep(0.005)


async def next_message(messages: AsyncIterator[tuple[str, bytes]]) -> tuple[str, bytes]:
    return await asyncio.wait_for(anext(messages), DEADLINE)


# -- Redis of `agora infra` ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The Redis of `agora infra`, started unless it runs (and left running)."""
    try:
        url = infra.ensure_up().redis_url
    except infra.InfraError as error:
        pytest.fail(f"Redis of `agora infra` cannot be started: {error}")
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {url} does not answer: {error!r}")
    finally:
        client.close()
    return url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# -- rate limiter ----------------------------------------------------------------------------


class RateLimiterContract(abc.ABC):
    """What every `RateLimiter` must do, on its own clock (no test passes `now` here)."""

    @abc.abstractmethod
    def make_limiter(self) -> RateLimiter:
        """A limiter; limiters made for one test share their buckets if the backend does."""

    @pytest.fixture
    def limiter(self) -> RateLimiter:
        return self.make_limiter()

    async def test_admits_capacity_then_refuses_with_retry_after(
        self, limiter: RateLimiter
    ) -> None:
        """A fresh bucket admits `capacity` requests, counting down `remaining`, then refuses
        with the time the next token takes; `reset_after` is the time to fill up again."""
        key, policy = unique("burst"), TokenBucket(capacity=10, refill_per_second=0.1)

        admitted = [await limiter.acquire(key, policy) for _ in range(10)]
        refused = await limiter.acquire(key, policy)

        assert [d.allowed for d in admitted] == [True] * 10
        assert [d.remaining for d in admitted] == list(range(9, -1, -1))
        assert all(d.retry_after == 0 for d in admitted)
        assert 0 < admitted[0].reset_after <= 10.0
        assert not refused.allowed
        assert refused.remaining == 0
        assert 9.0 < refused.retry_after <= 10.0  # one token at 0.1/s, less what has dripped in
        assert 99.0 < refused.reset_after <= 100.0

    async def test_costs_above_one_take_that_many_tokens(self, limiter: RateLimiter) -> None:
        """A request of cost n takes n tokens or, if fewer are left, none: a refusal leaves the
        bucket as it was, and says when n tokens will be there."""
        key, policy = unique("cost"), TokenBucket(capacity=10, refill_per_second=0.1)

        first = await limiter.acquire(key, policy, cost=4)
        second = await limiter.acquire(key, policy, cost=4)
        too_much = await limiter.acquire(key, policy, cost=4)
        rest = await limiter.acquire(key, policy, cost=2)

        assert (first.allowed, first.remaining) == (True, 6)
        assert (second.allowed, second.remaining) == (True, 2)
        assert (too_much.allowed, too_much.remaining) == (False, 2)
        assert 19.0 < too_much.retry_after <= 20.0  # two more tokens at 0.1/s
        assert (rest.allowed, rest.remaining) == (True, 0)

    async def test_cost_outside_one_to_capacity_is_an_error(self, limiter: RateLimiter) -> None:
        policy = TokenBucket(capacity=3, refill_per_second=1.0)
        for cost in (0, -1, 4):
            with pytest.raises(ValueError, match="cost"):
                await limiter.acquire(unique("bad-cost"), policy, cost=cost)

    async def test_refills_over_time(self, limiter: RateLimiter) -> None:
        """An empty bucket admits again once a token has dripped in, and not long before."""
        key, policy = unique("refill"), TokenBucket(capacity=2, refill_per_second=5.0)
        assert [(await limiter.acquire(key, policy)).allowed for _ in range(2)] == [True, True]
        refused = await limiter.acquire(key, policy)
        started = time.monotonic()
        assert not refused.allowed
        assert 0 < refused.retry_after <= 0.2

        admitted = await poll(
            lambda: limiter.acquire(key, policy), lambda d: d.allowed, "a token to drip in"
        )

        assert admitted.remaining == 0
        assert time.monotonic() - started >= refused.retry_after / 2

    async def test_keys_have_separate_buckets(self, limiter: RateLimiter) -> None:
        policy = TokenBucket(capacity=1, refill_per_second=0.01)
        spent = unique("spent")
        assert (await limiter.acquire(spent, policy)).allowed
        assert not (await limiter.acquire(spent, policy)).allowed

        assert (await limiter.acquire(unique("other"), policy)).allowed

    async def test_concurrent_acquires_never_over_admit(self, limiter: RateLimiter) -> None:
        """100 concurrent requests on a bucket of 10: exactly 10 pass, each seeing a different
        `remaining`, as if they had come one after another."""
        key, policy = unique("race"), TokenBucket(capacity=10, refill_per_second=0.001)

        decisions = await asyncio.gather(*(limiter.acquire(key, policy) for _ in range(100)))

        admitted = [d for d in decisions if d.allowed]
        assert len(admitted) == 10
        assert sorted(d.remaining for d in admitted) == list(range(10))


class TestInProcessRateLimiter(RateLimiterContract):
    def make_limiter(self) -> RateLimiter:
        return InProcessRateLimiter()

    async def test_token_arithmetic_on_an_explicit_clock(self) -> None:
        limiter = InProcessRateLimiter()
        key, policy = "alice", TokenBucket(capacity=4, refill_per_second=2.0)

        burst = [await limiter.acquire(key, policy, now=100.0) for _ in range(4)]
        assert burst == [
            Decision(allowed=True, remaining=3, retry_after=0.0, reset_after=0.5),
            Decision(allowed=True, remaining=2, retry_after=0.0, reset_after=1.0),
            Decision(allowed=True, remaining=1, retry_after=0.0, reset_after=1.5),
            Decision(allowed=True, remaining=0, retry_after=0.0, reset_after=2.0),
        ]
        assert await limiter.acquire(key, policy, now=100.0) == Decision(False, 0, 0.5, 2.0)
        assert await limiter.acquire(key, policy, now=100.25) == Decision(False, 0, 0.25, 1.75)
        assert await limiter.acquire(key, policy, cost=2, now=100.5) == Decision(False, 1, 0.5, 1.5)
        assert await limiter.acquire(key, policy, now=100.5) == Decision(True, 0, 0.0, 2.0)
        # Idle for long: the bucket is full again, and no fuller.
        assert await limiter.acquire(key, policy, now=1000.0) == Decision(True, 3, 0.0, 0.5)

    async def test_full_buckets_are_dropped(self) -> None:
        limiter = InProcessRateLimiter()
        policy = TokenBucket(capacity=2, refill_per_second=1.0)
        for n in range(50):
            await limiter.acquire(f"caller-{n}", policy, now=0.0)
        assert len(limiter) == 50

        # Every bucket has refilled by t=1: the next call drops them all but its own.
        await limiter.acquire("caller-0", policy, now=1.0)

        assert len(limiter) == 1

    async def test_memory_is_bounded_by_max_buckets(self) -> None:
        limiter = InProcessRateLimiter(max_buckets=3)
        policy = TokenBucket(capacity=1, refill_per_second=0.001)
        for n in range(5):
            await limiter.acquire(f"caller-{n}", policy, now=0.0)

        assert len(limiter) == 3
        # The least recently written bucket went first, forgiving its caller.
        assert (await limiter.acquire("caller-0", policy, now=0.0)).allowed
        assert not (await limiter.acquire("caller-4", policy, now=0.0)).allowed


@pytest.mark.redis
class TestRedisRateLimiter(RateLimiterContract):
    @pytest.fixture(autouse=True)
    def _use_redis(self, redis_client: Redis) -> None:
        self.client = redis_client

    def make_limiter(self) -> RateLimiter:
        return RedisRateLimiter(self.client)

    async def test_bucket_is_one_hash_that_expires_once_full(self) -> None:
        key, policy = unique("layout"), TokenBucket(capacity=2, refill_per_second=10.0)
        decision = await self.make_limiter().acquire(key, policy)
        stored = f"agora:ratelimit:{key}"

        state = await self.client.hgetall(stored)
        ttl_ms = await self.client.pttl(stored)

        assert set(state) == {b"tokens", b"ts"}
        assert float(state[b"tokens"]) == 1.0
        assert 0 < ttl_ms <= math.ceil(decision.reset_after * 1000)
        await poll(lambda: self.client.exists(stored), lambda n: n == 0, "the bucket to expire")

    async def test_the_clock_is_the_servers(self) -> None:
        """`now` is ignored: a caller's clock a day ahead does not refill the bucket."""
        limiter, key = self.make_limiter(), unique("clock")
        policy = TokenBucket(capacity=1, refill_per_second=0.001)

        assert (await limiter.acquire(key, policy, now=0.0)).allowed
        assert not (await limiter.acquire(key, policy, now=86_400.0)).allowed

    async def test_script_survives_a_flushed_script_cache(self) -> None:
        """After a failover or restart the server has forgotten the script; EVALSHA's miss
        loads it again."""
        limiter, key = self.make_limiter(), unique("flush")
        policy = TokenBucket(capacity=2, refill_per_second=0.001)
        assert (await limiter.acquire(key, policy)).remaining == 1

        await self.client.script_flush()

        assert (await limiter.acquire(key, policy)).remaining == 0

    async def test_the_race_test_sees_a_non_atomic_bucket(self) -> None:
        """The concurrency test can see a race: the same 100 requests through a read-then-write
        bucket (two commands, not one script) over-admit."""
        stored, capacity = f"agora:ratelimit:{unique('naive')}", 10

        async def naive_acquire() -> bool:
            raw = await self.client.hget(stored, "tokens")
            tokens = capacity if raw is None else float(raw)
            if tokens < 1:
                return False
            await self.client.hset(stored, "tokens", tokens - 1)
            return True

        try:
            admitted = sum(await asyncio.gather(*(naive_acquire() for _ in range(100))))
        finally:
            await self.client.unlink(stored)

        assert admitted > capacity


# -- read cache ------------------------------------------------------------------------------


class ReadCacheContract(abc.ABC):
    """What every `ReadCache` must do."""

    @abc.abstractmethod
    def make_cache(self) -> ReadCache:
        """A cache; caches made for one test share entries if the backend does."""

    @pytest.fixture
    def cache(self) -> ReadCache:
        return self.make_cache()

    async def test_get_returns_what_was_set(self, cache: ReadCache) -> None:
        key, value = unique("page"), b'\x00\xff{"seats": [1, 2]}'
        assert await cache.get(key) is None

        await cache.set(key, value, ttl=60)
        assert await cache.get(key) == value

        await cache.set(key, b"newer", ttl=60)
        assert await cache.get(key) == b"newer"

    async def test_entries_expire_after_their_ttl(self, cache: ReadCache) -> None:
        short, long = unique("short"), unique("long")
        await cache.set(long, b"stays", ttl=60)
        await cache.set(short, b"goes", ttl=0.05)

        await poll(lambda: cache.get(short), lambda value: value is None, "the entry to expire")

        assert await cache.get(long) == b"stays"

    async def test_ttl_must_be_positive(self, cache: ReadCache) -> None:
        for ttl in (0, -1, math.inf, math.nan):
            with pytest.raises(ValueError, match="ttl"):
                await cache.set(unique("ttl"), b"x", ttl=ttl)

    async def test_delete_removes_the_named_keys(self, cache: ReadCache) -> None:
        a, b, kept = unique("a"), unique("b"), unique("kept")
        for key in (a, b, kept):
            await cache.set(key, key.encode(), ttl=60)

        await cache.delete(a, b, unique("absent"))
        await cache.delete()

        assert [await cache.get(key) for key in (a, b)] == [None, None]
        assert await cache.get(kept) == kept.encode()


class TestInProcessReadCache(ReadCacheContract):
    def make_cache(self) -> ReadCache:
        return InProcessReadCache()

    async def test_least_recently_used_entry_goes_first(self) -> None:
        cache = InProcessReadCache(max_entries=3)
        for key in ("a", "b", "c"):
            await cache.set(key, key.encode(), ttl=60)
        assert await cache.get("a") == b"a"  # now b is the least recently used

        await cache.set("d", b"d", ttl=60)

        assert len(cache) == 3
        assert [await cache.get(key) for key in ("a", "b", "c", "d")] == [b"a", None, b"c", b"d"]


@pytest.mark.redis
class TestRedisReadCache(ReadCacheContract):
    @pytest.fixture(autouse=True)
    def _use_redis(self, redis_client: Redis) -> None:
        self.client = redis_client

    def make_cache(self) -> ReadCache:
        return RedisReadCache(self.client)

    async def test_entries_are_namespaced_strings_with_a_ttl(self) -> None:
        key = unique("layout")
        await self.make_cache().set(key, b"v", ttl=30)

        assert await self.client.get(f"agora:cache:{key}") == b"v"
        assert 0 < await self.client.pttl(f"agora:cache:{key}") <= 30_000


# -- fan-out ---------------------------------------------------------------------------------


class FanoutContract(abc.ABC):
    """What every `Fanout` must do."""

    @abc.abstractmethod
    def make_fanout(self) -> Fanout:
        """A fan-out; fan-outs made for one test share channels if the backend does."""

    @pytest.fixture
    def fanout(self) -> Fanout:
        return self.make_fanout()

    async def test_every_subscriber_of_a_channel_gets_every_message_in_order(
        self, fanout: Fanout
    ) -> None:
        seats, other = unique("seats"), unique("other")
        async with contextlib.AsyncExitStack() as stack:
            listeners = [await stack.enter_async_context(fanout.subscribe(seats)) for _ in "abc"]
            bystander = await stack.enter_async_context(fanout.subscribe(other))

            await fanout.publish(seats, b"seat 1 sold")
            await fanout.publish(seats, b"seat 2 sold")
            await fanout.publish(other, b"unrelated")

            for messages in listeners:
                assert await next_message(messages) == (seats, b"seat 1 sold")
                assert await next_message(messages) == (seats, b"seat 2 sold")
            # Published last: had `seats` leaked to this channel, it would have come first.
            assert await next_message(bystander) == (other, b"unrelated")

    async def test_one_subscription_hears_several_channels(self, fanout: Fanout) -> None:
        a, b = unique("a"), unique("b")
        async with fanout.subscribe(a, b, a) as messages:
            await fanout.publish(b, b"\x00\xff")
            await fanout.publish(a, b"to a")

            assert await next_message(messages) == (b, b"\x00\xff")
            assert await next_message(messages) == (a, b"to a")

    async def test_nothing_arrives_after_leaving(self, fanout: Fanout) -> None:
        channel = unique("leave")
        async with fanout.subscribe(channel) as staying:
            async with fanout.subscribe(channel) as leaving:
                await fanout.publish(channel, b"both")
                assert await next_message(leaving) == (channel, b"both")
                assert await next_message(staying) == (channel, b"both")

            await fanout.publish(channel, b"only staying")

            assert await next_message(staying) == (channel, b"only staying")
            assert [message async for message in leaving] == []

    async def test_a_message_nobody_hears_is_gone(self, fanout: Fanout) -> None:
        channel = unique("unheard")
        await fanout.publish(channel, b"lost")
        async with fanout.subscribe(channel) as messages:
            await fanout.publish(channel, b"heard")

            assert await next_message(messages) == (channel, b"heard")

    async def test_subscribe_needs_a_channel(self, fanout: Fanout) -> None:
        with pytest.raises(ValueError, match="channel"):
            async with fanout.subscribe():
                pass


class TestInProcessFanout(FanoutContract):
    def make_fanout(self) -> Fanout:
        return InProcessFanout()

    async def test_a_slow_subscriber_loses_the_oldest_messages(self) -> None:
        """Publishing never waits for subscribers: past `max_pending` unread messages the
        oldest are dropped (and counted), while a subscriber that keeps up loses nothing."""
        fanout, channel = InProcessFanout(max_pending=3), unique("slow")
        async with fanout.subscribe(channel) as slow, fanout.subscribe(channel) as fast:
            for n in range(5):
                await fanout.publish(channel, f"m{n}".encode())
                assert await next_message(fast) == (channel, f"m{n}".encode())

            assert [await next_message(slow) for _ in range(3)] == [
                (channel, b"m2"),
                (channel, b"m3"),
                (channel, b"m4"),
            ]
            assert getattr(slow, "dropped") == 2  # noqa: B009 - not on the port's type
            assert getattr(fast, "dropped") == 0  # noqa: B009

    async def test_leaving_releases_the_channel(self) -> None:
        fanout, channel = InProcessFanout(), unique("release")
        async with fanout.subscribe(channel), fanout.subscribe(channel):
            assert fanout.subscriber_count(channel) == 2

        assert fanout.subscriber_count(channel) == 0

    async def test_closing_ends_every_subscription_now_and_later(self) -> None:
        fanout, a, b = InProcessFanout(), unique("close-a"), unique("close-b")
        async with fanout.subscribe(a) as first, fanout.subscribe(a, b) as second:
            waiting = asyncio.create_task(anext(first, None))
            await fanout.publish(b, b"before closing")
            assert fanout.subscription_count() == 2

            fanout.close()

            assert await asyncio.wait_for(waiting, timeout=5) is None
            assert [message async for message in second] == []
            async with fanout.subscribe(a) as late:
                assert [message async for message in late] == []
        assert fanout.subscription_count() == 0


@pytest.mark.redis
class TestRedisFanout(FanoutContract):
    @pytest.fixture(autouse=True)
    def _use_redis(self, redis_client: Redis, redis_url: str) -> None:
        self.client = redis_client
        self.url = redis_url

    def make_fanout(self) -> Fanout:
        return RedisFanout(self.client)

    async def test_replicas_hear_each_other(self) -> None:
        """Two gateway replicas, each with its own client: what one publishes, the other's
        subscribers get."""
        channel = unique("replicas")
        other_replica = Redis.from_url(self.url)
        try:
            async with RedisFanout(other_replica).subscribe(channel) as messages:
                await self.make_fanout().publish(channel, b"seat 7 held")

                assert await next_message(messages) == (channel, b"seat 7 held")
        finally:
            await other_replica.aclose()

    async def test_leaving_ends_the_subscription_on_the_server(self) -> None:
        channel = unique("numsub")
        stored = f"agora:live:{channel}"

        async def subscribers() -> int:
            return int(dict(await self.client.pubsub_numsub(stored))[stored.encode()])

        async with self.make_fanout().subscribe(channel):
            assert await subscribers() == 1

        await poll(subscribers, lambda n: n == 0, "the server to drop the subscription")


# -- HTTP fields ------------------------------------------------------------------------------


def test_headers_of_an_admitted_request() -> None:
    policy = TokenBucket(capacity=10, refill_per_second=1.0)
    decision = Decision(allowed=True, remaining=7, retry_after=0.0, reset_after=2.3)

    assert rate_limit_headers(decision, policy) == {
        "RateLimit-Policy": '"default";q=10;w=10',
        "RateLimit": '"default";r=7;t=3',
    }


def test_headers_of_a_refused_request() -> None:
    """Retry-After is whole seconds rounded up, and the effective window ends with it."""
    policy = TokenBucket(capacity=10, refill_per_second=1.0)
    decision = Decision(allowed=False, remaining=0, retry_after=0.2, reset_after=9.8)

    assert rate_limit_headers(decision, policy, name="per-ip") == {
        "RateLimit-Policy": '"per-ip";q=10;w=10',
        "RateLimit": '"per-ip";r=0;t=1',
        "Retry-After": "1",
    }


def test_header_window_is_whole_seconds_rounded_up() -> None:
    admitted = Decision(allowed=True, remaining=0, retry_after=0.0, reset_after=0.001)

    fractional = rate_limit_headers(admitted, TokenBucket(5, refill_per_second=2.0))
    fast = rate_limit_headers(admitted, TokenBucket(1, refill_per_second=1000.0))

    assert fractional["RateLimit-Policy"] == '"default";q=5;w=3'
    assert fast["RateLimit-Policy"] == '"default";q=1;w=1'
    assert fast["RateLimit"] == '"default";r=0;t=1'


def test_header_policy_name_is_a_structured_field_string() -> None:
    policy = TokenBucket(capacity=1, refill_per_second=1.0)
    decision = Decision(allowed=True, remaining=0, retry_after=0.0, reset_after=1.0)

    quoted = rate_limit_headers(decision, policy, name='say "hi" \\ bye')

    assert quoted["RateLimit"] == '"say \\"hi\\" \\\\ bye";r=0;t=1'
    with pytest.raises(ValueError, match="ASCII"):
        rate_limit_headers(decision, policy, name="café")


def test_token_bucket_rejects_impossible_policies() -> None:
    for capacity, rate in ((0, 1.0), (1, 0.0), (1, -1.0), (1, math.inf), (1, math.nan)):
        with pytest.raises(ValueError, match=r"capacity|refill"):
            TokenBucket(capacity=capacity, refill_per_second=rate)


@pytest.mark.redis
async def test_a_burst_larger_than_the_redis_pool_queues_instead_of_failing(
    redis_url: str,
) -> None:
    """Each request checks revocation in Redis: 200 at once through a pool of 4 connections
    must all be answered (the 5th caller waits for a connection; it used to raise)."""
    settings = Settings(
        redis_url=redis_url, redis_max_connections=4, kafka_namespace=unique("burst")
    )
    client = build_redis(settings)
    assert client is not None
    revocations = build_revocations(settings, client)

    async def record() -> list[tuple[str, float]]:
        return [("burst-revoked", 60.0)]

    try:
        assert await revocations.publish(record)
        answers = await asyncio.gather(
            *(revocations.is_revoked(f"burst-{n % 10}") for n in range(200)),
            revocations.is_revoked("burst-revoked"),
        )
    finally:
        await client.aclose()

    assert answers == [False] * 200 + [True]
