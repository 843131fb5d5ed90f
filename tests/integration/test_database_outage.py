"""A database that goes away answers 503 with `Retry-After`, never 500, and the same requests
succeed once it is back. On a PostgreSQL of the test's own, stopped and started again (the
shared one keeps running for the other tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agora.infra.postgres import create_databases
from agora.runtime.runtime import Runtime
from agora.settings import Settings
from own_postgres import OwnPostgres, own_postgres

__all__ = ["own_postgres"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
async def client(own_postgres: OwnPostgres, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Catalog alone, on the test's own PostgreSQL (and the embedded log)."""
    await create_databases(own_postgres.url_template(), ["catalog"])
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url_template=own_postgres.url_template(),
        migrate_on_start=True,
        seed_file=None,
        partitions=1,
        consumers_per_group=1,
        rate_limits=False,
    )
    runtime = Runtime(settings, ["catalog"])
    app = runtime.app()
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://agora") as client:
            yield client
    finally:
        await runtime.stop()


async def eventually_status(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        response = await client.get(path)
        if response.status_code == status:
            return response
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"GET {path} never answered {status}: last {response.status_code}")
        await asyncio.sleep(0.05)


def fresh_search() -> str:
    """A search nobody made before, so the read cache cannot answer it."""
    return f"/api/products?q=never{uuid.uuid4().hex[:10]}"


async def test_a_stopped_database_answers_503_with_retry_after_then_200_again(
    own_postgres: OwnPostgres, client: httpx.AsyncClient
) -> None:
    assert (await client.get(fresh_search())).status_code == 200
    assert (await client.get("/healthz")).status_code == 200

    await asyncio.to_thread(own_postgres.stop)

    for path in (fresh_search(), fresh_search(), "/api/stores"):
        response = await client.get(path)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["retry-after"] == "1"
        assert response.json()["type"] == "/problems/database-unavailable"
    # alive all the same: a liveness probe must not restart the process for an outage
    alive = await client.get("/healthz")
    assert alive.status_code == 200, alive.text
    assert alive.json()["status"] == "degraded"
    assert alive.json()["settled"] is False

    not_ready = await eventually_status(client, "/readyz", 503)
    assert "database" in {item["dependency"] for item in not_ready.json()["unavailable"]}

    await asyncio.to_thread(own_postgres.start)

    await eventually_status(client, fresh_search(), 200)
    await eventually_status(client, "/readyz", 200)
    assert (await client.get("/healthz")).json()["status"] == "ok"
