"""Rate limits at the entry: per address for anonymous calls, per user by plan; 429 with
Retry-After and the RateLimit fields, then recovery as the bucket refills. And CORS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from accounts import admin_session, client_from, register_and_login

from agora.runtime.runtime import Runtime
from conftest import settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANONYMOUS, FREE, PREMIUM = 30, 40, 80  # requests per minute (and burst)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    runtime_settings = settings(Path(tmp_path_factory.mktemp("edge"))).model_copy(
        update={
            "rate_limits": True,
            "rate_limit_anonymous": ANONYMOUS,
            "rate_limit_free": FREE,
            "rate_limit_premium": PREMIUM,
            "cors_origins": ["https://shop.example"],
        }
    )
    runtime = Runtime(runtime_settings)
    app = runtime.app()
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.runtime = runtime  # type: ignore[attr-defined]
            yield client
    finally:
        await runtime.stop()


async def exhaust(client: httpx.AsyncClient, headers: dict[str, str], limit: int) -> httpx.Response:
    """Send until refused; the bucket must admit `limit` requests (give or take a refill)."""
    for sent in range(limit * 2):
        response = await client.get("/api/products", headers=headers)
        if response.status_code == 429:
            assert sent >= limit, f"refused after {sent} of a burst of {limit}"
            return response
        assert response.status_code == 200, response.text
    raise AssertionError(f"never limited after {limit * 2} requests")


async def test_anonymous_calls_are_limited_per_address_and_recover(
    limited: httpx.AsyncClient,
) -> None:
    async with client_from(limited, "198.51.100.7") as client:
        first = await client.get("/api/products")
        assert first.headers["ratelimit-policy"] == f'"anonymous";q={ANONYMOUS};w=60'
        assert first.headers["ratelimit"].startswith('"anonymous";r=')
        refused = await exhaust(client, {}, ANONYMOUS - 1)  # one went first
        body = refused.json()
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert body["type"] == "/problems/rate-limited"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60 / ANONYMOUS + 1
        assert refused.headers["ratelimit"].endswith(f";t={retry_after}")
        async with client_from(limited, "198.51.100.8") as neighbour:
            assert (await neighbour.get("/api/products")).status_code == 200  # its own bucket
        deadline = time.monotonic() + 10
        while (await client.get("/api/products")).status_code == 429:
            assert time.monotonic() < deadline, "the bucket never refilled"
    # Health and metrics are not rate limited.
    assert (await limited.get("/healthz")).status_code == 200


async def test_users_are_limited_per_user_by_plan(limited: httpx.AsyncClient) -> None:
    async with client_from(limited, "203.0.113.5") as client:
        free = await register_and_login(client)
        refused = await exhaust(client, free.headers, FREE)
        assert refused.headers["ratelimit-policy"] == f'"free";q={FREE};w=60'

        premium = await register_and_login(client)
        admin = await admin_session(client, limited.runtime)  # type: ignore[attr-defined]
        upgraded = await client.put(
            f"/api/users/{premium.user_id}/plan", json={"plan": "premium"}, headers=admin.headers
        )
        assert upgraded.status_code == 200, upgraded.text
        renewed = await client.post(
            "/api/auth/refresh", json={"refresh_token": premium.refresh_token}
        )
        headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
        refused = await exhaust(client, headers, PREMIUM)
        assert refused.headers["ratelimit-policy"] == f'"premium";q={PREMIUM};w=60'


async def test_cors_answers_the_configured_origin_only(limited: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Idempotency-Key",
    }
    allowed = await limited.options("/api/orders", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = await limited.options(
        "/api/orders", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
