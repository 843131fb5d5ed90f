"""A service added as a package and a registry entry, and nothing else: the runtime builds it
from its spec, migrates its database, runs its consumer group, and the gateway routes its paths
to it and documents them (tests/throwaway_service)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import throwaway_service
from agora.runtime.runtime import Runtime, build_gateway
from agora.services.catalog.seed import DEMO_CATALOG
from agora.services.registry import SERVICES
from agora.settings import Settings

SPECS = (*SERVICES, throwaway_service.SPEC)
DEADLINE = 15.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        seed_file=None,
        smtp_host=None,
        rate_limits=False,
        behind_gateway=True,
        upstreams={spec.name: ["http://services"] for spec in SPECS},
    )
    runtime = Runtime(settings, specs=SPECS)
    await runtime.start()
    services = runtime.app()
    gateway = build_gateway(
        settings,
        SPECS,
        client_factory=lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=services)),
    )
    try:
        async with lifespan(gateway):
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield client
    finally:
        await runtime.stop()


async def test_a_service_from_its_spec_alone_is_routed_documented_and_fed(
    gateway: httpx.AsyncClient,
) -> None:
    product = DEMO_CATALOG[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        response = await gateway.get(f"/api/echo/products/{product.id}")
        if response.status_code == 200 or loop.time() > deadline:
            break
        assert response.status_code == 404, response.text
        assert response.json()["type"] == "/problems/not-heard"
        await asyncio.sleep(0.05)

    assert response.status_code == 200, f"not fed within {DEADLINE}s: {response.text}"
    assert response.json() == {"product_id": product.id, "name": product.name}
    paths = (await gateway.get("/openapi.json")).json()["paths"]
    assert "/api/echo/products/{product_id}" in paths
    assert "/api/orders" in paths  # beside every registered service's
