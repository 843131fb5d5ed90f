"""Redis that goes away degrades what it serves, it never fails a request: reads skip the read
cache and come from the database, the rate limits fall back to each process's own buckets, and
revoked sessions stay revoked across a restart or a flush (identity's database is their record).

On a Redis of the test's own, stopped, flushed and started again (the shared one keeps running
for the other tests); the services run in process on the embedded default.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from agora.runtime.runtime import Runtime, build_redis
from agora.services.catalog.seed import DEMO_CATALOG
from agora.settings import Settings
from agora.shared.cache.redis import RedisReadCache
from agora.shared.revocations import RevocationsUnavailable
from agora.shared.revocations.redis import RedisRevocations
from own_redis import OwnRedis, own_redis

__all__ = ["own_redis"]

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

T = TypeVar("T")
PRODUCT = DEMO_CATALOG[0].id


async def eventually(probe: Callable[[], Awaitable[T]], what: str, timeout: float = 30.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}: last {result!r}")
        await asyncio.sleep(0.05)


async def started(
    tmp_path: Path, own_redis: OwnRedis, names: list[str], **overrides: Any
) -> tuple[Runtime, httpx.AsyncClient]:
    options: dict[str, Any] = {"rate_limits": False, **overrides}
    settings = Settings(
        data_dir=tmp_path / "data",
        redis_url=own_redis.url,
        seed_file=None,
        partitions=1,
        consumers_per_group=1,
        **options,
    )
    runtime = Runtime(settings, names)
    app = runtime.app()
    await runtime.start()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return runtime, httpx.AsyncClient(transport=transport, base_url="http://agora")


@pytest.fixture
async def catalog(
    tmp_path: Path, own_redis: OwnRedis
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    runtime, client = await started(tmp_path, own_redis, ["catalog"])
    try:
        yield runtime, client
    finally:
        await client.aclose()
        await runtime.stop()


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def redis_up(metrics: str, component: str) -> float:
    return sample(metrics, "agora_dependency_up", dependency="redis", component=component)


async def cached_keys(server: OwnRedis) -> list[bytes]:
    client = aioredis.Redis.from_url(server.url)
    try:
        return [key async for key in client.scan_iter(match="agora:catalog:product:*")]
    finally:
        await client.aclose()


async def test_reads_come_from_the_database_while_the_read_cache_is_down(
    own_redis: OwnRedis, catalog: tuple[Runtime, httpx.AsyncClient]
) -> None:
    _, client = catalog
    first = await client.get(f"/api/products/{PRODUCT}")
    assert first.status_code == 200
    assert await cached_keys(own_redis)  # the read went into the cache

    await asyncio.to_thread(own_redis.stop)

    for _ in range(3):
        product = await client.get(f"/api/products/{PRODUCT}")
        assert product.status_code == 200, product.text
        assert product.json() == first.json()
        listed = await client.get("/api/products", params={"q": "espresso"})
        assert listed.status_code == 200, listed.text
        assert PRODUCT in {item["id"] for item in listed.json()["items"]}
    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "agora_redis_errors_total", component="read cache") >= 1
    assert redis_up(metrics, "read cache") == 0

    await asyncio.to_thread(own_redis.start)  # back, and empty

    async def cached_again() -> list[bytes]:
        assert (await client.get(f"/api/products/{PRODUCT}")).status_code == 200
        return await cached_keys(own_redis)

    await eventually(cached_again, "the product cached again")
    metrics = (await client.get("/metrics")).text
    assert redis_up(metrics, "read cache") == 1


async def test_a_delete_lost_while_redis_stalled_is_done_before_the_cache_answers_again(
    own_redis: OwnRedis,
) -> None:
    """A Redis that keeps its data but stops answering (CLIENT PAUSE): the deletion that timed
    out must not leave the old value to be served once it answers again."""
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=0.3)
    admin = aioredis.Redis.from_url(own_redis.url)
    cache = RedisReadCache(client, namespace="test:cache:")
    try:
        await cache.set("product:1", b"old price", ttl=60)
        assert await cache.get("product:1") == b"old price"

        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        await cache.delete("product:1")  # times out: remembered
        assert await cache.get("product:1") is None  # not served while Redis stalls

        async def answers_again() -> bool:
            return bool(await admin.ping())

        await eventually(answers_again, "Redis to answer after its pause")
        await eventually(cache_answers(cache), "the cache to use Redis again")
        assert await admin.exists("test:cache:product:1") == 0  # deleted after all
        assert await cache.get("product:1") is None
    finally:
        await client.aclose()
        await admin.aclose()


def cache_answers(cache: RedisReadCache) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        await cache.set("probe", b"1", ttl=60)
        return await cache.get("probe") == b"1"

    return probe


async def logged_in(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"user-{uuid.uuid4().hex[:12]}@example.test"
    account = {"email": email, "password": "correct horse battery staple"}
    registered = await client.post("/api/auth/register", json={**account, "role": "buyer"})
    assert registered.status_code == 202, registered.text
    response = await client.post("/api/auth/login", json=account)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def identity(
    tmp_path: Path, own_redis: OwnRedis
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    runtime, client = await started(tmp_path, own_redis, ["identity"])
    try:
        yield runtime, client
    finally:
        await client.aclose()
        await runtime.stop()


async def logged_out_token(client: httpx.AsyncClient) -> dict[str, str]:
    headers = await logged_in(client)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    logout = await client.post("/api/auth/logout", headers=headers)
    assert logout.status_code == 204, logout.text
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    return headers


async def never_accepted_again(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Until identity has published its revocations again, the token is refused as unknown
    (503 revocations-unavailable), then as revoked (401): never accepted."""
    seen: list[int] = []

    async def refused_as_revoked() -> bool:
        response = await client.get("/api/auth/me", headers=headers)
        seen.append(response.status_code)
        assert response.status_code in (401, 503), response.text
        if response.status_code == 503:
            assert response.json()["type"] == "/problems/revocations-unavailable"
            assert response.headers["retry-after"] == "1"
        return response.status_code == 401

    await eventually(refused_as_revoked, "identity to publish its revocations again")


async def test_a_flushed_redis_never_makes_a_revoked_token_valid(
    own_redis: OwnRedis, identity: tuple[Runtime, httpx.AsyncClient]
) -> None:
    _, client = identity
    headers = await logged_out_token(client)
    live = await logged_in(client)

    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        await admin.flushall()
    finally:
        await admin.aclose()

    await never_accepted_again(client, headers)
    assert (await client.get("/api/auth/me", headers=live)).status_code == 200


async def test_a_restarted_redis_never_makes_a_revoked_token_valid(
    own_redis: OwnRedis, identity: tuple[Runtime, httpx.AsyncClient]
) -> None:
    _, client = identity
    headers = await logged_out_token(client)

    await asyncio.to_thread(own_redis.stop)
    down = await client.get("/api/auth/me", headers=headers)
    assert down.status_code == 503, down.text
    await asyncio.to_thread(own_redis.start)  # empty: it keeps nothing

    await never_accepted_again(client, headers)


async def test_a_flush_during_a_publish_leaves_the_list_incomplete(
    own_redis: OwnRedis,
) -> None:
    """Redis flushed after identity started a publish (and after a logout it will not see
    wrote its entry): the list must not be marked complete without that entry."""
    client = aioredis.Redis.from_url(own_redis.url)
    revocations = RedisRevocations(client, prefix="test:revoked:")
    try:
        await revocations.revoke("logged-out-meanwhile", ttl=60)

        async def record_read_then_flushed() -> list[tuple[str, float]]:
            await client.flushall()
            return [("revoked-earlier", 60.0)]

        assert not await revocations.publish(record_read_then_flushed)
        assert not await revocations.is_complete()
        with pytest.raises(RevocationsUnavailable):
            await revocations.is_revoked("logged-out-meanwhile")

        async def record() -> list[tuple[str, float]]:
            return [("revoked-earlier", 60.0), ("logged-out-meanwhile", 60.0)]

        assert await revocations.publish(record)
        assert await revocations.is_complete()
        assert await revocations.is_revoked("logged-out-meanwhile")
        assert await revocations.is_revoked("revoked-earlier")
        assert not await revocations.is_revoked("never-revoked")
    finally:
        await client.aclose()


async def test_rate_limits_hold_per_process_while_redis_is_down(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    """The documented choice: fail open to each process's own buckets, so limits still hold
    (per process) and no request fails because the shared buckets cannot be read."""
    runtime, client = await started(
        tmp_path, own_redis, ["catalog"], rate_limits=True, rate_limit_anonymous=5
    )
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        assert (await client.get("/api/stores")).status_code == 200
        assert [key async for key in admin.scan_iter(match="agora:ratelimit:*")]
        await admin.aclose()

        await asyncio.to_thread(own_redis.stop)
        statuses = [(await client.get("/api/stores")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = await client.get("/api/stores")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        metrics = (await client.get("/metrics")).text
        assert redis_up(metrics, "rate limiter") == 0

        await asyncio.to_thread(own_redis.start)  # back, empty: a fresh bucket there
        admin = aioredis.Redis.from_url(own_redis.url)

        async def limited_in_redis_again() -> bool:
            response = await client.get("/api/stores")
            return response.status_code == 200 and bool(
                [key async for key in admin.scan_iter(match="agora:ratelimit:*")]
            )

        await eventually(limited_in_redis_again, "the limits kept in Redis again")
    finally:
        await admin.aclose()
        await client.aclose()
        await runtime.stop()


async def test_a_stalled_redis_costs_a_read_its_timeout_not_the_stall(
    own_redis: OwnRedis,
) -> None:
    """Redis that stops answering without closing (CLIENT PAUSE here, a dead peer elsewhere):
    the process's client gives up after `redis_timeout_seconds` and the read goes on."""
    settings = Settings(redis_url=own_redis.url, redis_timeout_seconds=0.3)
    client = build_redis(settings)
    assert client is not None
    admin = aioredis.Redis.from_url(own_redis.url)
    cache = RedisReadCache(client, namespace="test:stall:")
    try:
        await cache.set("k", b"v", ttl=60)
        await admin.execute_command("CLIENT", "PAUSE", "5000", "ALL")
        started = time.monotonic()
        assert await cache.get("k") is None
        assert time.monotonic() - started < 2.0
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await client.aclose()
        await admin.aclose()
