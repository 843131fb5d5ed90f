"""The seated on-sale: many buyers rush for the best available seats of one session.

An organizer opens a store, draws a venue of `seats` seats (rows of 40, numbered "1", "2", …,
the first the best), schedules an event with one session and one category and opens its sales,
all over HTTP. Then `buyers` buyers, `concurrency` at a time, each ask for 1 to 4 best-available
seats (drawn from `random_seed`) in one order paid at once, and follow it until it is final.

Reports seats sold (counted "sold" on the session's seat map at the end: must equal the seats),
seats sold twice (a seat in the places of two confirmed orders: must be 0), the sell-out time
(from the first request until the order holding the last seat was seen CONFIRMED), buyers refused
at the door (409, by problem type) and cancelled by the saga, latency from POST to CONFIRMED,
requests/s, and CPU of `agora up` and its children per ticket sold.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from agora.bench.harness import (
    FINAL,
    PLACED,
    RESENT,
    SENT,
    buyer_accounts,
    client_pool,
    cpu_seconds,
    follow_order,
    percentile,
    place_order,
    running_agora_process,
)
from agora.contracts.seating import MAX_ROWS_PER_ZONE, rows_plan

CATEGORY = "standard"
MAX_PER_ORDER = 4
# The most a buyer may hold in one session (ticketing allows no more): buyers share accounts,
# so there are enough accounts that no account comes near it.
MAX_PER_BUYER = 100
SEATS_PER_ACCOUNT = 40


def venue_body(seats: int) -> dict[str, Any]:
    """A venue of exactly `seats` seats: rows of 40 (more per row past 40,000 seats), the last
    row shorter when 40 does not divide `seats`."""
    per_row = max(40, math.ceil(seats / MAX_ROWS_PER_ZONE))
    rows = math.ceil(seats / per_row)
    if seats % per_row == 0:
        return {"name": "Bench arena", "rows": {"rows": f"1-{rows}", "seats_per_row": per_row}}
    plan = rows_plan(f"1-{rows}", per_row, category=CATEGORY).model_dump(mode="json")
    last = plan["zones"][0]["rows"][-1]
    last["seats"] = last["seats"][: seats % per_row]
    return {"name": "Bench arena", "plan": plan}


async def eventually(probe: Any, what: str, timeout: float = 120) -> Any:
    """`await probe()` until it returns something other than None, or exit after `timeout`."""
    deadline = time.monotonic() + timeout
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"agora bench: {what} took over {timeout:.0f}s")
        await asyncio.sleep(0.2)
    return found


async def settled(client: httpx.AsyncClient, what: str) -> None:
    async def probe() -> bool | None:
        return True if (await client.get("/healthz")).json().get("settled") else None

    await eventually(probe, what)


async def session_on_sale(client: httpx.AsyncClient, seats: int) -> str:
    """An organizer's session of `seats` seats with its sales open, known to orders and
    inventory: its id."""
    (organizer,) = await buyer_accounts(client, 1, role="seller")
    store = await client.post("/api/stores", json={"name": "Bench arena"}, headers=organizer)
    store.raise_for_status()
    venues = f"/api/stores/{store.json()['id']}/venues"

    async def venue() -> httpx.Response | None:
        made = await client.post(venues, json=venue_body(seats), headers=organizer)
        if made.status_code == 201:
            return made
        if made.status_code != 404:  # 404 until ticketing has learnt of the store
            raise SystemExit(f"agora bench: venue refused: {made.status_code} {made.text}")
        return None

    venue_id = (await eventually(venue, "ticketing to learn of the store")).json()["id"]
    starts_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    event = await client.post(
        f"/api/stores/{store.json()['id']}/events",
        json={
            "title": "Bench night",
            "venue_id": venue_id,
            "currency": "EUR",
            "categories": [{"name": CATEGORY, "price": "30.00"}],
            "sessions": [{"starts_at": starts_at.isoformat()}],
            "max_per_order": MAX_PER_ORDER,
            "max_per_buyer": MAX_PER_BUYER,
        },
        headers=organizer,
    )
    if event.status_code != 201:
        raise SystemExit(f"agora bench: event refused: {event.status_code} {event.text}")
    session_id = str(event.json()["sessions"][0]["id"])
    opened = await client.post(f"/api/sessions/{session_id}/sales", headers=organizer)
    opened.raise_for_status()
    await settled(client, "orders and inventory to learn that sales opened")
    return session_id


async def rush(
    base_url: str,
    backend: str,
    seats: int,
    buyers: int,
    concurrency: int,
    poll: float,
    random_seed: int,
    cpu: Any,
) -> dict[str, object]:
    limit = asyncio.Semaphore(concurrency)
    draw = random.Random(random_seed)
    asked = [draw.randint(1, MAX_PER_ORDER) for _ in range(buyers)]
    latencies: list[float] = []  # to CONFIRMED
    refused_latencies: list[float] = []  # to CANCELLED or EXPIRED
    final: Counter[str] = Counter()
    door: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    confirmed_at: list[tuple[float, int]] = []
    holders: dict[str, list[str]] = {}
    async with client_pool(base_url, concurrency) as clients:
        client = clients[0]
        session_id = await session_on_sale(client, seats)
        accounts = await buyer_accounts(
            client, max(32, math.ceil(seats / SEATS_PER_ACCOUNT)), at_once=4
        )
        print(f"  {len(accounts)} buyer accounts, session {session_id} on sale", file=sys.stderr)
        sent_before, cpu_before = SENT[0], cpu()
        started = time.monotonic()

        async def buy(n: int) -> None:
            async with limit:
                begun = time.perf_counter()
                auth = accounts[n % len(accounts)]
                http = clients[n % len(clients)]
                response = await place_order(
                    http,
                    {
                        "tickets": [
                            {"session_id": session_id, "category": CATEGORY, "quantity": asked[n]}
                        ],
                        "payment_token": "tok_visa",
                    },
                    auth,
                    poll,
                )
                if response.status_code not in PLACED:
                    try:
                        kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
                    except ValueError:
                        kind = ""
                    if response.status_code == 409:
                        door[kind] += 1
                    else:
                        errors[f"HTTP {response.status_code} {kind}".strip()] += 1
                    return
                order = await follow_order(http, response, auth, FINAL, poll)
                elapsed_ms = (time.perf_counter() - begun) * 1000
                final[order["status"]] += 1
                if order["status"] != "CONFIRMED":
                    refused_latencies.append(elapsed_ms)
                    return
                latencies.append(elapsed_ms)
                confirmed_at.append((time.monotonic() - started, len(order["places"])))
                for place in order["places"]:
                    holders.setdefault(str(place["seat_id"]), []).append(order["id"])

        def report() -> None:
            print(
                f"  {time.monotonic() - started:6.1f}s  "
                f"{final.total() + door.total() + errors.total()}/{buyers} buyers done, "
                f"{sum(q for _, q in confirmed_at)}/{seats} seats confirmed, "
                f"{door.total()} refused at the door, {final['CANCELLED']} cancelled",
                file=sys.stderr,
            )

        async def progress() -> None:
            while True:
                await asyncio.sleep(1)
                report()

        reporter = asyncio.create_task(progress())
        await asyncio.gather(*(buy(n) for n in range(buyers)))
        rush_s = time.monotonic() - started
        sent = SENT[0] - sent_before
        reporter.cancel()
        report()  # the last line, however short the rush
        # Every order is final, so once inventory has caught up nothing is held: what the
        # seat map shows sold was sold.
        await settled(client, "agora to settle after the on-sale")
        cpu_used = cpu() - cpu_before
        states = Counter(
            (await client.get(f"/api/sessions/{session_id}/seats")).json()["seats"].values()
        )
    tickets = 0
    sell_out_s: float | None = None
    for at, count in sorted(confirmed_at):
        tickets += count
        if tickets >= seats and sell_out_s is None:
            sell_out_s = round(at, 2)
    return {
        "scenario": "onsale-seated",
        "backend": backend,
        "seats": seats,
        "buyers": buyers,
        "concurrency": concurrency,
        "random_seed": random_seed,
        "accounts": len(accounts),
        "sold": states["sold"],
        "held_at_end": states["held"],
        "double_sold": sum(1 for orders in holders.values() if len(orders) > 1),
        "confirmed_orders": final["CONFIRMED"],
        "confirmed_tickets": tickets,
        "refused_at_door": door.total(),
        "refused_at_door_by_kind": dict(door),
        "cancelled_by_saga": final["CANCELLED"],
        "expired": final["EXPIRED"],
        "errors": errors.total(),
        "errors_by_kind": dict(errors),
        "resent": dict(RESENT),
        "sell_out_s": sell_out_s,
        "rush_s": round(rush_s, 2),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "refused_p50_ms": round(percentile(refused_latencies, 0.50), 1),
        "refused_p99_ms": round(percentile(refused_latencies, 0.99), 1),
        "buyers_per_s": round(buyers / rush_s, 1),
        "requests_per_s": round(sent / rush_s, 1),
        "cpu_s": round(cpu_used, 1),
        # `agora up` and its children, from the first order until settled after the last
        "cpu_ms_per_ticket": round(1000 * cpu_used / states["sold"], 1) if states["sold"] else None,
    }


def bench_seated(
    *,
    backend: str,
    replicas: int,
    seats: int,
    buyers: int,
    concurrency: int,
    poll: float,
    random_seed: int = 0,
    profile: Path | None = None,
) -> dict[str, object]:
    with running_agora_process(backend, replicas, [], profile=profile) as (base_url, pid):
        return asyncio.run(
            rush(
                base_url,
                backend,
                seats,
                buyers,
                concurrency,
                poll,
                random_seed,
                lambda: cpu_seconds(pid),
            )
        )
