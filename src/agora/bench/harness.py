"""What every benchmark shares: an `agora up` of its own, settled, and percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from agora.runtime.supervisor import LOOPBACK, free_port

FINAL = frozenset({"CONFIRMED", "CANCELLED", "EXPIRED"})
"""The statuses an order ends in."""


def servers_env(replicas: int) -> dict[str, str]:
    """Settings for the servers `agora infra up` runs, with databases and topics of this run."""
    from agora.infra import ensure_up

    return {**ensure_up().isolated_env("bench"), "AGORA_REPLICAS": str(replicas)}


def wait_until_settled(
    base_url: str,
    timeout: float = 180,
    *,
    stocked: bool = True,
    server: subprocess.Popen[bytes] | None = None,
) -> None:
    """Until the server answers and every event is published and consumed (so that orders
    knows the seeded product's price; `stocked`: until a product is on sale). Ends at once if
    `server`, the process of `agora up`, exits meanwhile (it said why on stderr)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url) as client:
        while time.monotonic() < deadline:
            if server is not None and server.poll() is not None:
                raise SystemExit(f"agora up exited with {server.returncode} before it settled")
            try:
                health = client.get("/healthz").json()
                if health.get("status") == "ok" and health.get("settled"):
                    if not stocked:
                        return
                    items = client.get("/api/products").json()["items"]
                    if items and items[0]["available"] > 0:
                        return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
    raise SystemExit(f"agora up at {base_url} did not settle within {timeout}s")


async def buyer_accounts(
    client: httpx.AsyncClient, count: int, *, role: str = "buyer", at_once: int = 1
) -> list[dict[str, str]]:
    """`count` accounts of `role` registered and logged in over HTTP, `at_once` at a time:
    their Authorization headers. Each costs the server two password hashes."""
    limit = asyncio.Semaphore(at_once)

    async def account(n: int) -> dict[str, str]:
        email = f"bench-{role}-{n}-{os.getpid()}@example.test"
        password = "bench password, not a secret"
        async with limit:
            registered = await client.post(
                "/api/auth/register", json={"email": email, "password": password, "role": role}
            )
            registered.raise_for_status()
            login = await client.post(
                "/api/auth/login", json={"email": email, "password": password}
            )
            login.raise_for_status()
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    return list(await asyncio.gather(*(account(n) for n in range(count))))


@contextlib.asynccontextmanager
async def client_pool(
    base_url: str, connections: int, *, per_client: int = 25
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """HTTP clients sharing `connections` between them, at most `per_client` each. httpcore's
    pool does work in proportion to its connections on every request: one client with 500
    connections spent half the load generator's CPU there and became the bottleneck."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    limits=httpx.Limits(max_connections=per_client),
                    timeout=120,
                )
            )
            for _ in range(max(1, -(-connections // per_client)))
        ]


RESENT: dict[str, int] = {}
"""Requests `request` sent again, by cause: reported with the figures."""

SENT: list[int] = [0]
"""Requests `request` sent, resent ones included: for requests/s."""


async def request(
    client: httpx.AsyncClient, method: str, url: str, **options: Any
) -> httpx.Response:
    """`client.request`, sent again (up to five times in all) when the connection fails (the
    server may close an idle keep-alive connection just as the client reuses it) or the answer
    is 502/503 (no replica answered at the entry), after its `Retry-After`. Safe for the
    benchmarks' requests: GETs, and POSTs carrying an Idempotency-Key."""
    for attempt in range(5):
        last = attempt == 4
        SENT[0] += 1
        try:
            response = await client.request(method, url, **options)
        except httpx.TransportError as error:
            if last:
                raise
            RESENT[type(error).__name__] = RESENT.get(type(error).__name__, 0) + 1
            continue
        if response.status_code not in {502, 503} or last:
            return response
        RESENT[f"HTTP {response.status_code}"] = RESENT.get(f"HTTP {response.status_code}", 0) + 1
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    raise AssertionError("unreachable")


PLACED = frozenset({200, 201, 202})
"""Statuses of an order placed: 202 on its way, 201 (200 for a replayed key) at rest."""


async def place_order(
    client: httpx.AsyncClient, body: dict[str, Any], auth: dict[str, str], poll: float
) -> httpx.Response:
    """POST the order `body` with a fresh Idempotency-Key. `poll` 0 (a buyer following each
    change) also asks the answer to wait for the saga to come to rest (`Prefer: wait`), so a
    saga that ends within it takes one request; `follow_order` goes on from a 202."""
    headers = {"Idempotency-Key": str(uuid.uuid4()), **auth}
    if not poll:
        headers["Prefer"] = "wait=20"
    return await request(client, "POST", "/api/orders", json=body, headers=headers)


async def follow(
    client: httpx.AsyncClient,
    placed: httpx.Response,
    auth: dict[str, str],
    final: Collection[str],
    poll: float,
) -> str:
    """Follow the order `placed` (the answer to its POST) until its status is in `final`; return
    that status. `poll` > 0: a GET every `poll` seconds, as a naive browser would; 0: one GET
    per change, each waiting for the next (`If-None-Match` + `Prefer: wait`)."""
    return str((await follow_order(client, placed, auth, final, poll))["status"])


async def follow_order(
    client: httpx.AsyncClient,
    placed: httpx.Response,
    auth: dict[str, str],
    final: Collection[str],
    poll: float,
) -> dict[str, Any]:
    """`follow`, returning the order as last read (its status in `final`)."""
    order: dict[str, Any] = placed.json()
    etag = placed.headers["ETag"]
    while order["status"] not in final:
        if poll:
            await asyncio.sleep(poll)
            headers = auth
        else:
            headers = {**auth, "If-None-Match": etag, "Prefer": "wait=20"}
        response = await request(client, "GET", f"/api/orders/{order['id']}", headers=headers)
        if response.status_code == 304:
            continue
        response.raise_for_status()
        order, etag = response.json(), response.headers["ETag"]
    return order


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process `pid` and its descendants that are alive (Linux):
    the platform's own work, without the load generator's and the servers' (PostgreSQL, Kafka).
    Unlike wall-clock rates, it hardly moves with CPU steal or other tenants' load."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


@contextlib.contextmanager
def running_agora(
    backend: str, replicas: int, seed: Sequence[dict[str, Any]], *, profile: Path | None = None
) -> Iterator[str]:
    """`agora up` on a fresh data folder (on servers: fresh databases and topics) with `seed`,
    settled; yields its base URL and stops it afterwards."""
    with running_agora_process(backend, replicas, seed, profile=profile) as (base_url, _pid):
        yield base_url


@contextlib.contextmanager
def running_agora_process(
    backend: str,
    replicas: int,
    seed: Sequence[dict[str, Any]],
    *,
    profile: Path | None = None,
    servers: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
) -> Iterator[tuple[str, int]]:
    """`running_agora`, yielding the process id of `agora up` too. `profile`: run `agora up`
    under cProfile (every thread; on servers only the supervisor, not the services) and write
    its statistics there when it stops (`python -m pstats` reads them). `servers`: the
    settings of servers other than those of `agora infra up`; `data_dir`: a data folder to keep
    (default: a temporary one)."""
    port = free_port(LOOPBACK)
    with tempfile.TemporaryDirectory() as folder:
        seed_file = Path(folder) / "seed.json"
        seed_file.write_text(json.dumps(list(seed)))
        # The benchmarks measure the saga, not the rate limiter: one address sends it all.
        env = {**os.environ, "AGORA_LOG_LEVEL": "WARNING", "AGORA_RATE_LIMITS": "false"}
        if backend == "servers":
            env |= servers_env(replicas) if servers is None else servers
        profiled = ["-m", "agora.bench.profiled", str(profile)] if profile else ["-m", "agora"]
        server = subprocess.Popen(
            [
                sys.executable,
                *profiled,
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir or Path(folder) / "data"),
                "--seed",
                str(seed_file),
            ],
            env=env,
        )
        try:
            base_url = f"http://{LOOPBACK}:{port}"
            wait_until_settled(base_url, stocked=bool(seed), server=server)
            yield base_url, server.pid
        finally:
            server.terminate()
            server.wait(timeout=60)
