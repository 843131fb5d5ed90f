"""Closed-loop saga benchmark against `agora up`, on the embedded default or on the servers.

Starts `agora up` on a fresh data folder (on servers: fresh databases and topics on the servers
`agora infra up` runs, one process per service) with one product of ample stock, then runs
`--concurrency` buyers for `--duration` seconds: each places an order paid with `tok_visa` and
polls it until CONFIRMED, then places the next. Prints progress every second and one JSON line:
completed sagas, sagas/s, and latency percentiles from POST to CONFIRMED as the client sees it.

    agora bench saga --backend embedded --duration 20 --concurrency 16
    agora bench saga --backend servers --replicas 2 --duration 20 --concurrency 16
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable

import httpx

from agora.bench.harness import (
    buyer_accounts,
    cpu_seconds,
    follow,
    percentile,
    request,
    running_agora_process,
)

FINAL = {"CONFIRMED", "CANCELLED", "EXPIRED"}


async def buyer(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    stop_at: float,
    latencies: list[float],
    poll: float,
) -> int:
    errors = 0
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        response = await request(
            client,
            "POST",
            "/api/orders",
            json={
                "items": [{"product_id": "bench-item", "quantity": 1}],
                "payment_token": "tok_visa",
            },
            headers={"Idempotency-Key": str(uuid.uuid4()), **auth},
        )
        if response.status_code != 202:
            errors += 1
            continue
        status = await follow(client, response, auth, FINAL, poll)
        if status == "CONFIRMED":
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors += 1
    return errors


async def run(
    base_url: str,
    backend: str,
    duration: float,
    concurrency: int,
    poll: float,
    cpu: Callable[[], float] = lambda: 0.0,
) -> dict[str, object]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        accounts = await buyer_accounts(client, min(concurrency, 16))
        cpu_before = cpu()
        started = time.monotonic()
        stop_at = started + duration
        tasks = [
            asyncio.create_task(
                buyer(client, accounts[n % len(accounts)], stop_at, latencies, poll)
            )
            for n in range(concurrency)
        ]
        while not all(task.done() for task in tasks):
            await asyncio.sleep(1)
            elapsed = time.monotonic() - started
            print(f"  {elapsed:5.1f}s  {len(latencies):6d} confirmed", file=sys.stderr)
        errors = sum(await asyncio.gather(*tasks))
        elapsed = time.monotonic() - started
    cpu_used = cpu() - cpu_before
    return {
        "scenario": "saga",
        "backend": backend,
        "concurrency": concurrency,
        "poll_ms": round(poll * 1000),
        "completed": len(latencies),
        "errors": errors,
        "sagas_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        # CPU of `agora up` and its children per saga: steadier than sagas/s on a shared machine
        "cpu_ms_per_saga": round(1000 * cpu_used / len(latencies), 1) if latencies else None,
    }


def bench_saga(
    *, backend: str, replicas: int, duration: float, concurrency: int, poll: float
) -> dict[str, object]:
    seed = [
        {
            "id": "bench-item",
            "name": "Bench item",
            "price": "1.00",
            "currency": "EUR",
            "stock": 10_000_000,
        }
    ]
    with running_agora_process(backend, replicas, seed) as (base_url, pid):
        return asyncio.run(
            run(base_url, backend, duration, concurrency, poll, lambda: cpu_seconds(pid))
        )
