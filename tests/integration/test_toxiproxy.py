"""The network faults the fault tests make with toxiproxy are real ones: through a proxy to an
echo server of the test's own, latency delays each answer, reset_peer resets the connection and
timeout stops data until it is removed (then the connection is closed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from agora.infra.toxiproxy import Proxy, Toxiproxy
from agora.runtime.supervisor import LOOPBACK, free_port
from own_toxiproxy import toxiproxy

__all__ = ["toxiproxy"]

pytestmark = [pytest.mark.slow]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the proxy reset the connection: what the test makes it do
    finally:
        await close(writer)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close `writer` and wait until it is (a reset one raises: it is closed all the same), so
    that none is left for the collector to find after its loop has gone."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.fixture
async def proxy(toxiproxy: Toxiproxy) -> AsyncIterator[Proxy]:
    server = await asyncio.start_server(echo, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield await asyncio.to_thread(
            toxiproxy.proxy, "echo", listen=free_port(LOOPBACK), upstream=f"{LOOPBACK}:{port}"
        )
    finally:
        server.close()
        await server.wait_closed()


async def round_trip(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> float:
    started = time.monotonic()
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), timeout=5) == b"ping"
    return time.monotonic() - started


async def test_latency_delays_each_answer(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    try:
        assert await round_trip(writer, reader) < 0.2  # negative control: fast without it
        with proxy.toxic("latency", latency=300):
            assert await round_trip(writer, reader) >= 0.3
        assert await round_trip(writer, reader) < 0.2
    finally:
        await close(writer)


async def test_reset_peer_resets_the_connection(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    try:
        await round_trip(writer, reader)
        with proxy.toxic("reset_peer", timeout=0):
            writer.write(b"ping")
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(4), timeout=5)
    finally:
        await close(writer)


async def test_timeout_stops_data_until_removed_then_closes(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    try:
        await round_trip(writer, reader)
        with proxy.toxic("timeout", timeout=0):
            writer.write(b"ping")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readexactly(4), timeout=1)
        # Its removal closes the connections it held: their data is gone.
        assert await asyncio.wait_for(reader.read(4), timeout=5) == b""
        fresh_reader, fresh_writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        try:
            assert await round_trip(fresh_writer, fresh_reader) < 1
        finally:
            await close(fresh_writer)
    finally:
        await close(writer)
