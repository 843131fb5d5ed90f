"""The gateway when a replica fails while answering a write (a process killed mid-request): the
write may have been applied, so it is not sent on to another replica; the client gets a 502
problem that tells it when to send it again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CollectorRegistry

from agora.gateway.proxy import create_gateway
from agora.services.registry import SERVICES
from agora.services.spec import PathTable


@contextlib.asynccontextmanager
async def hanging_up_replica() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server that reads a request and closes the connection without an answer."""
    heard: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", heard


async def test_a_write_whose_replica_hangs_up_is_a_502_with_retry_after() -> None:
    async with (
        hanging_up_replica() as (first, first_heard),
        hanging_up_replica() as (
            second,
            second_heard,
        ),
    ):
        app = create_gateway(
            {"orders": [first, second]}, PathTable(SERVICES), [], CollectorRegistry()
        )
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
        ):
            response = await client.post(
                "/api/orders", json={"items": []}, headers={"Idempotency-Key": "k"}
            )
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/bad-gateway"
    assert "Idempotency-Key" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"
    # sent once: a write that may have been applied is never sent to a second replica
    assert len(first_heard) + len(second_heard) == 1
