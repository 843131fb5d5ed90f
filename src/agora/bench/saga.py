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
from collections import Counter
from collections.abc import Callable

import httpx

from agora.bench.harness import (
    FINAL,
    PLACED,
    RESENT,
    buyer_accounts,
    cpu_seconds,
    follow,
    percentile,
    place_order,
    running_agora_process,
)


async def buyer(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    measure_from: float,
    stop_at: float,
    latencies: list[float],
    poll: float,
) -> Counter[str]:
    """Order, follow the order to its end, repeat until `stop_at`; sagas begun from
    `measure_from` on are timed into `latencies`. Returns the errors by kind (an HTTP status
    refusing the order, or the final status of an order that did not confirm)."""
    errors: Counter[str] = Counter()
    while time.monotonic() < stop_at:
        measured = time.monotonic() >= measure_from
        started = time.perf_counter()
        response = await place_order(
            client,
            {"items": [{"product_id": "bench-item", "quantity": 1}], "payment_token": "tok_visa"},
            auth,
            poll,
        )
        if response.status_code not in PLACED:
            errors[f"HTTP {response.status_code}"] += 1
            continue
        status = await follow(client, response, auth, FINAL, poll)
        if status != "CONFIRMED":
            errors[status] += 1
        elif measured:
            latencies.append((time.perf_counter() - started) * 1000)
    return errors


async def run(
    base_url: str,
    backend: str,
    duration: float,
    concurrency: int,
    poll: float,
    cpu: Callable[[], float] = lambda: 0.0,
    warmup: float = 5.0,
) -> dict[str, object]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        accounts = await buyer_accounts(client, min(concurrency, 16))
        # the first `warmup` seconds are load but not measured: consumer groups settle,
        # connection pools fill, SQLAlchemy compiles its statements
        started = time.monotonic()
        measure_from = started + warmup
        stop_at = measure_from + duration
        cpu_before: float | None = cpu() if warmup <= 0 else None
        tasks = [
            asyncio.create_task(
                buyer(client, accounts[n % len(accounts)], measure_from, stop_at, latencies, poll)
            )
            for n in range(concurrency)
        ]
        pending: set[asyncio.Task[Counter[str]]] = set(tasks)
        while pending:
            now = time.monotonic()
            _, pending = await asyncio.wait(
                pending, timeout=1.0 if now >= measure_from else min(1.0, measure_from - now)
            )
            phase = "warming up" if cpu_before is None else "confirmed"
            print(
                f"  {time.monotonic() - started:5.1f}s  {len(latencies):6d} {phase}",
                file=sys.stderr,
            )
            if cpu_before is None and time.monotonic() >= measure_from:
                cpu_before = cpu()
        errors = sum(await asyncio.gather(*tasks), Counter[str]())
        elapsed = time.monotonic() - measure_from
        if cpu_before is None:
            cpu_before = cpu()
    cpu_used = cpu() - cpu_before
    return {
        "scenario": "saga",
        "backend": backend,
        "concurrency": concurrency,
        "poll_ms": round(poll * 1000),
        "warmup_s": warmup,
        "completed": len(latencies),
        "errors": errors.total(),
        "resent": dict(RESENT),
        "errors_by_kind": dict(errors),
        "sagas_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        # CPU of `agora up` and its children per saga: steadier than sagas/s on a shared machine
        "cpu_ms_per_saga": round(1000 * cpu_used / len(latencies), 1) if latencies else None,
    }


def bench_saga(
    *,
    backend: str,
    replicas: int,
    duration: float,
    concurrency: int,
    poll: float,
    warmup: float = 5.0,
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
            run(
                base_url,
                backend,
                duration,
                concurrency,
                poll,
                lambda: cpu_seconds(pid),
                warmup=warmup,
            )
        )
