"""The on-sale: many buyers rush for few units of one product.

`buyers` orders of one unit each, `concurrency` at a time, against `units` in stock; every
buyer follows its order until it is final. Reports how long the units took to sell out (until the
last unit's order was seen CONFIRMED), units sold (must equal the stock: never more), buyers
refused (at the door with 409 `sold-out` once orders knows, else cancelled by the saga), and
latency from POST to the final state.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from agora.bench.harness import (
    FINAL,
    PLACED,
    RESENT,
    buyer_accounts,
    client_pool,
    follow,
    percentile,
    place_order,
    running_agora,
)


async def rush(
    base_url: str, backend: str, units: int, buyers: int, concurrency: int, poll: float
) -> dict[str, object]:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    confirmed_at: list[float] = []
    errors: Counter[str] = Counter()
    async with client_pool(base_url, concurrency) as clients:
        client = clients[0]
        accounts = await buyer_accounts(client, min(buyers, 32))
        started = time.monotonic()

        async def buy(n: int) -> None:
            async with limit:
                begun = time.perf_counter()
                auth = accounts[n % len(accounts)]
                response = await place_order(
                    clients[n % len(clients)],
                    {
                        "items": [{"product_id": "hot-ticket", "quantity": 1}],
                        "payment_token": "tok_visa",
                    },
                    auth,
                    poll,
                )
                if response.status_code == 409 and response.json()["type"].endswith("/sold-out"):
                    status = "SOLD_OUT"  # refused at the door
                elif response.status_code not in PLACED:
                    try:
                        kind = str(response.json().get("type", ""))
                    except ValueError:
                        kind = ""
                    errors[f"HTTP {response.status_code} {kind}".strip()] += 1
                    return
                else:
                    status = await follow(clients[n % len(clients)], response, auth, FINAL, poll)
                latencies.append((time.perf_counter() - begun) * 1000)
                outcomes[status] = outcomes.get(status, 0) + 1
                if status == "CONFIRMED":
                    confirmed_at.append(time.monotonic() - started)

        async def progress() -> None:
            while True:
                await asyncio.sleep(1)
                print(
                    f"  {time.monotonic() - started:5.1f}s  {len(latencies)} final, "
                    f"{len(confirmed_at)} sold",
                    file=sys.stderr,
                )

        reporter = asyncio.create_task(progress())
        await asyncio.gather(*(buy(n) for n in range(buyers)))
        reporter.cancel()
        # Every order is final, so nothing is held: once catalog has caught up with inventory,
        # what is not available was sold.
        deadline = time.monotonic() + 60
        while not (await client.get("/healthz")).json().get("settled"):
            if time.monotonic() > deadline:
                raise SystemExit("agora did not settle after the on-sale")
            await asyncio.sleep(0.2)
        product = (await client.get("/api/products/hot-ticket")).json()
        sold = units - int(product["available"])
    return {
        "scenario": "onsale",
        "backend": backend,
        "units": units,
        "buyers": buyers,
        "concurrency": concurrency,
        "sold": sold,
        "oversold": max(0, outcomes.get("CONFIRMED", 0) - units),
        "confirmed": outcomes.get("CONFIRMED", 0),
        "rejected": outcomes.get("CANCELLED", 0) + outcomes.get("SOLD_OUT", 0),
        "refused_at_door": outcomes.get("SOLD_OUT", 0),
        "errors": errors.total(),
        "resent": dict(RESENT),
        "errors_by_kind": dict(errors),
        "sell_out_s": round(max(confirmed_at), 2) if len(confirmed_at) >= units else None,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


def bench_onsale(
    *,
    backend: str,
    replicas: int,
    units: int,
    buyers: int,
    concurrency: int,
    poll: float,
    profile: Path | None = None,
) -> dict[str, object]:
    seed = [
        {
            "id": "hot-ticket",
            "name": "Hot ticket",
            "price": "50.00",
            "currency": "EUR",
            "stock": units,
        }
    ]
    with running_agora(backend, replicas, seed, profile=profile) as base_url:
        return asyncio.run(rush(base_url, backend, units, buyers, concurrency, poll))
