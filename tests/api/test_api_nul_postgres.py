"""A NUL in a request body's string is refused before PostgreSQL sees it: asyncpg refuses to
send one (a 500 before), where SQLite stores it. tests/api/test_api_strict_input.py covers every
field on the embedded default; this covers the stored ones on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from accounts import register_and_login

from agora.infra import InfraSettings
from agora.runtime.runtime import SERVICE_NAMES, Runtime
from agora.runtime.supervisor import ensure_database
from agora.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

NUL = "\u0000"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    servers: InfraSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The runtime on databases of this module's own on PostgreSQL (the embedded log carries
    the events)."""
    template = servers.isolated_env("nul")["AGORA_DATABASE_URL_TEMPLATE"]
    for service in SERVICE_NAMES:
        await ensure_database(template.format(service=service))
    runtime = Runtime(
        Settings(
            data_dir=tmp_path_factory.mktemp("agora"),
            database_url_template=template,
            migrate_on_start=True,
            seed_file=None,
            smtp_host=None,
            rate_limits=False,
        )
    )
    app = runtime.app()
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await runtime.stop()


async def test_a_nul_is_refused_on_postgresql(client: httpx.AsyncClient) -> None:
    seller = await register_and_login(client, "seller")
    store = await client.post("/api/stores", json={"name": "Plain name"}, headers=seller.headers)
    assert store.status_code == 201, store.text
    store_id = store.json()["id"]

    for method, path, body in [
        ("POST", "/api/stores", {"name": f"Nul{NUL}store"}),
        ("PATCH", f"/api/stores/{store_id}", {"description": NUL}),
        (
            "POST",
            f"/api/stores/{store_id}/products",
            {"name": f"x{NUL}", "price": "1.00", "currency": "EUR", "initial_stock": 1},
        ),
    ]:
        response = await client.request(method, path, json=body, headers=seller.headers)

        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "/problems/validation-error", problem
        assert "NUL" in problem["detail"], problem
