"""Closed-loop saga benchmark against `agora up`, on the embedded default or on the servers.

Starts `agora up` on a fresh data folder (on servers: fresh databases and topics on the servers
`agora infra up` runs, one process per service) with one product of ample stock, then runs
`--concurrency` buyers for `--duration` seconds: each places an order paid with `tok_visa` and
polls it until CONFIRMED, then places the next. Prints progress every second and one JSON line:
completed sagas, sagas/s, and latency percentiles from POST to CONFIRMED as the client sees it.

    .venv/bin/python bench/saga.py --backend embedded --duration 20 --concurrency 16
    .venv/bin/python bench/saga.py --backend servers --replicas 2 --duration 20 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def servers_env(replicas: int) -> dict[str, str]:
    """Settings for the servers `agora infra up` runs, with databases and topics of this run."""
    from agora.infra import ensure_up

    return {**ensure_up().isolated_env("bench"), "AGORA_REPLICAS": str(replicas)}


def wait_until_settled(base_url: str, timeout: float = 180) -> None:
    """Until the server answers and every event is published and consumed (so that orders
    knows the seeded product's price)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{base_url}/healthz").json()
            if health.get("status") == "ok" and health.get("settled"):
                items = httpx.get(f"{base_url}/api/products").json()["items"]
                if items and items[0]["available"] > 0:
                    return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"agora up at {base_url} did not settle within {timeout}s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def buyer(
    client: httpx.AsyncClient, stop_at: float, latencies: list[float], poll: float
) -> int:
    errors = 0
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        response = await client.post(
            "/api/orders",
            json={
                "customer_id": "bench",
                "items": [{"product_id": "bench-item", "quantity": 1}],
                "payment_token": "tok_visa",
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if response.status_code != 202:
            errors += 1
            continue
        order_id = response.json()["id"]
        while True:
            status = (await client.get(f"/api/orders/{order_id}")).json()["status"]
            if status == "CONFIRMED":
                latencies.append((time.perf_counter() - started) * 1000)
                break
            if status in {"CANCELLED", "EXPIRED"}:
                errors += 1
                break
            await asyncio.sleep(poll)
    return errors


async def run(
    base_url: str, backend: str, duration: float, concurrency: int, poll: float
) -> dict[str, object]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        started = time.monotonic()
        stop_at = started + duration
        tasks = [
            asyncio.create_task(buyer(client, stop_at, latencies, poll)) for _ in range(concurrency)
        ]
        while not all(task.done() for task in tasks):
            await asyncio.sleep(1)
            elapsed = time.monotonic() - started
            print(f"  {elapsed:5.1f}s  {len(latencies):6d} confirmed", file=sys.stderr)
        errors = sum(await asyncio.gather(*tasks))
        elapsed = time.monotonic() - started
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "servers"], default="embedded")
    parser.add_argument("--replicas", type=int, default=1, help="servers: of orders etc.")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--poll", type=float, default=0.02, help="seconds between a buyer's status checks"
    )
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        seed = Path(folder) / "seed.json"
        seed.write_text(
            json.dumps(
                [
                    {
                        "id": "bench-item",
                        "name": "Bench item",
                        "price": "1.00",
                        "currency": "EUR",
                        "stock": 10_000_000,
                    }
                ]
            )
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agora",
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(Path(folder) / "data"),
                "--seed",
                str(seed),
            ],
            env={**os.environ, "AGORA_LOG_LEVEL": "WARNING"},
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_settled(base_url)
            result = asyncio.run(
                run(base_url, args.backend, args.duration, args.concurrency, args.poll)
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
