"""The entry on servers: real nginx, with the configuration `agora up` writes for it, in front of
replicas that answer, refuse or hang up. Each path reaches the service the registry says owns
it; what nginx answers by itself is a problem with the headers every answer carries; a write
that may have been applied is never sent to a second replica, a read is."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson

from agora.gateway.nginx import ENTRY, ENTRY_PATHS, EntryLimits, nginx_config
from agora.infra import port_open
from agora.infra.nginx import find_nginx
from agora.runtime.supervisor import LOOPBACK, free_port
from agora.services.registry import SERVICES
from agora.services.spec import PathTable
from harness import eventually

LIMITS = EntryLimits(max_body_bytes=10_000, header_timeout=5, body_timeout=5, upstream_timeout=5)


class Replica:
    """A replica on loopback that names itself in a JSON answer to each request (the path,
    and the headers it got), or hangs up after reading one (`hang_up`)."""

    def __init__(self, name: str, *, hang_up: bool = False) -> None:
        self.name = name
        self.hang_up = hang_up
        self.heard: list[str] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # cancelled too when the test ends with nginx's kept-alive connections open
        with contextlib.suppress(
            asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError
        ):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.rstrip("\r\n").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.heard.append(request_line)
                if self.hang_up:
                    break
                body = orjson.dumps(
                    {"service": self.name, "target": request_line.split(" ")[1], **headers}
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def replicas(*wanted: Replica) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for replica in wanted:
            server = await asyncio.start_server(replica.serve, LOOPBACK, 0)
            replica.url = f"http://{LOOPBACK}:{server.sockets[0].getsockname()[1]}"
            await stack.enter_async_context(server)
        yield


@contextlib.contextmanager
def nginx(tmp_path: Path, upstreams: dict[str, list[str]], entry: str) -> Iterator[str]:
    """nginx with `agora up`'s configuration for these replicas; its base URL."""
    binary = find_nginx()
    assert binary is not None, "nginx is not installed: run `agora infra up` (it installs it)"
    port = free_port(LOOPBACK)
    folder = tmp_path / "nginx"
    folder.mkdir()
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / f"{kind}_temp").mkdir()
    needed = {spec.name for spec in SERVICES}
    config = nginx_config(
        listen=f"{LOOPBACK}:{port}",
        upstreams={name: upstreams.get(name) or [entry] for name in needed},
        entry=[entry],
        paths=PathTable(SERVICES),
        limits=LIMITS,
        prefix=folder,
    )
    (folder / "nginx.conf").write_text(config)
    command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:

        def listening() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            return port_open(port, LOOPBACK)

        eventually(listening, timeout=10, what="nginx to listen")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def sample_paths() -> list[str]:
    """A path under every template of every service, the template itself, and paths no
    service owns."""
    paths = []
    for spec in SERVICES:
        for template in spec.paths:
            concrete = "/".join(
                "abc" if part.startswith("{") else part for part in template.split("/")
            )
            paths += [concrete, concrete + "/x/y"]
    return [*paths, "/", "/console/app.js", "/openapi.json", "/healthz", "/api/nothing"]


async def test_every_path_reaches_the_service_the_registry_names(tmp_path: Path) -> None:
    owners = PathTable(SERVICES)
    named = {spec.name: Replica(spec.name) for spec in SERVICES} | {ENTRY: Replica(ENTRY)}
    async with replicas(*named.values()):
        upstreams = {name: [replica.url] for name, replica in named.items()}
        with nginx(tmp_path, upstreams, named[ENTRY].url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                for path in sample_paths():
                    expected = owners.service_for(path) or ENTRY
                    if any(path == e or path.startswith(e + "/") for e in ENTRY_PATHS):
                        expected = ENTRY
                    response = await client.get(path, params={"q": "a b"})
                    assert response.status_code == 200, (path, response.text)
                    assert response.json()["service"] == expected, path
                    assert response.json()["target"] == f"{path}?q=a+b"


async def test_what_a_replica_is_told_of_the_request(tmp_path: Path) -> None:
    orders = Replica("orders")
    async with replicas(orders):
        with nginx(tmp_path, {"orders": [orders.url]}, orders.url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                sane = await client.get(
                    "/api/orders",
                    headers={"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "abc-123"},
                )
                odd = await client.get("/api/orders", headers={"X-Request-Id": "no spaces"})
    told = sane.json()
    # the proxy appends the peer it saw: the service believes that address, the last one
    assert told["x-forwarded-for"] == f"203.0.113.9, {LOOPBACK}"
    assert told["x-request-id"] == "abc-123"
    assert told["host"] == base.removeprefix("http://")
    assert odd.json()["x-request-id"] != "no spaces"
    assert len(odd.json()["x-request-id"]) == 32  # nginx's own


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


async def test_a_write_whose_replica_hangs_up_is_a_502_and_sent_once(tmp_path: Path) -> None:
    first, second = Replica("orders", hang_up=True), Replica("orders", hang_up=True)
    async with replicas(first, second):
        with nginx(tmp_path, {"orders": [first.url, second.url]}, first.url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                write = await client.post(
                    "/api/orders", json={"items": []}, headers={"Idempotency-Key": "k"}
                )
    assert_problem(write, 502, "bad-gateway")
    assert "Idempotency-Key" in write.json()["detail"]
    assert write.headers["retry-after"] == "1"
    # the write may have been applied: never sent to a second replica
    assert len(first.heard) + len(second.heard) == 1


async def test_a_read_whose_replica_hangs_up_goes_on_to_the_next(tmp_path: Path) -> None:
    """The control of the test above: the same failure, on a request that changes nothing."""
    first, second = Replica("orders", hang_up=True), Replica("orders", hang_up=True)
    async with replicas(first, second):
        with nginx(tmp_path, {"orders": [first.url, second.url]}, first.url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                read = await client.get("/api/orders/x")
    assert_problem(read, 502, "bad-gateway")
    assert len(first.heard) + len(second.heard) == 2


async def test_a_replica_that_refuses_connections_is_passed_over_even_for_a_write(
    tmp_path: Path,
) -> None:
    alive = Replica("orders")
    gone = f"http://{LOOPBACK}:{free_port(LOOPBACK)}"  # nothing listens there
    async with replicas(alive):
        with nginx(tmp_path, {"orders": [gone, alive.url]}, alive.url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                answers = [
                    await client.post("/api/orders", json={}, headers={"Idempotency-Key": str(i)})
                    for i in range(4)
                ]
    assert [answer.status_code for answer in answers] == [200] * 4
    assert len(alive.heard) == 4  # each sent once: a refused connection carried nothing


async def test_what_nginx_refuses_itself_is_a_problem(tmp_path: Path) -> None:
    orders = Replica("orders")
    gone = f"http://{LOOPBACK}:{free_port(LOOPBACK)}"
    async with replicas(orders):
        with nginx(tmp_path, {"orders": [orders.url], "catalog": [gone]}, orders.url) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                too_large = await client.post(
                    "/api/orders",
                    content=b"x" * (LIMITS.max_body_bytes + 1),
                    headers={"Content-Type": "application/json"},
                )
                unreachable = await client.get("/api/products")
                nul = await client.get("/api/orders/%00")  # refused as nginx reads the line
                huge = await client.get("/api/orders", headers={"X-Big": "x" * 40_000})
                inside = await client.get("/.agora-entry/problems/502")  # nginx's own pages
    assert_problem(too_large, 413, "payload-too-large")
    assert str(LIMITS.max_body_bytes) in too_large.json()["detail"]
    assert orders.heard == []
    assert_problem(unreachable, 502, "bad-gateway")
    assert unreachable.headers["retry-after"] == "1"
    assert_problem(nul, 400, "bad-request")
    assert_problem(huge, 400, "headers-too-large")
    assert_problem(inside, 404, "not-found")
