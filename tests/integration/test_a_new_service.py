"""A service added as a package and a registry entry, and nothing else: the runtime builds it
from its spec, migrates its database, runs its consumer group and serves its paths; the entry
proxy routes them to it and the gateway documents them (tests/throwaway_service)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import throwaway_service
from agora.gateway.nginx import EntryLimits, nginx_config
from agora.runtime.runtime import Runtime, build_gateway
from agora.services.catalog.seed import DEMO_CATALOG
from agora.services.registry import SERVICES
from agora.services.spec import PathTable
from agora.settings import Settings

SPECS = (*SERVICES, throwaway_service.SPEC)
DEADLINE = 15.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The runtime's app of every service, the new one among them, and the gateway's."""
    settings = Settings(
        data_dir=tmp_path / "data",
        seed_file=None,
        smtp_host=None,
        rate_limits=False,
        behind_proxy=True,
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
        async with (
            lifespan(gateway),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=services), base_url="http://services"
            ) as to_services,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
            ) as to_gateway,
        ):
            yield to_services, to_gateway
    finally:
        await runtime.stop()


async def test_a_service_from_its_spec_alone_is_routed_documented_and_fed(
    platform: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    services, gateway = platform
    product = DEMO_CATALOG[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        response = await services.get(f"/api/echo/products/{product.id}")
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
    config = nginx_config(
        listen="127.0.0.1:8000",
        upstreams={spec.name: ["http://127.0.0.1:9000"] for spec in SPECS},
        entry=["http://127.0.0.1:9001"],
        paths=PathTable(SPECS),
        limits=EntryLimits(
            max_body_bytes=1000, header_timeout=1, body_timeout=1, upstream_timeout=1
        ),
    )
    assert 'location ~ "^/api/echo(?:/|$)" { proxy_pass http://echo; }' in config
