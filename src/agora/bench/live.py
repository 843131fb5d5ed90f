"""Live seat maps under load: `clients` WebSocket subscribers watch one session while `buyers`
buyers hold and buy its seats.

An organizer puts a session of `seats` seats on sale over HTTP; the subscribers connect to
`/ws/sessions/{id}` and take their snapshot; then the buyers, each in a closed loop, order one
best-available seat paid at once and follow the order until it is final, for `duration` seconds
(or until the seats run out). Every subscriber checks its stream: versions follow each other
with no gap and no repeat (a snapshot, sent to a subscriber that fell behind, starts it again).

At the end each subscriber's map is compared with the session's seat map as the API answers
it. Reports, at the subscribers, the time from a change's commit to its delta received (p50,
p99, max), deltas received and lost, snapshots sent to laggards, and CPU of `agora up` and its
children per 1,000 deltas delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agora.bench.harness import (
    buyer_accounts,
    client_pool,
    cpu_seconds,
    follow_order,
    percentile,
    request,
    running_agora_process,
)
from agora.bench.seated import CATEGORY, session_on_sale, settled

FINAL = {"CONFIRMED", "CANCELLED", "EXPIRED"}
CONNECTING = 20
"""Subscribers connecting (and taking their snapshot) at once."""


class Subscriber:
    """One client of the session's stream, applying what it receives to its own map."""

    def __init__(self) -> None:
        self.seats: dict[str, str] = {}
        self.version = -1
        self.latencies: list[float] = []
        self.received = 0
        self.frames = 0
        self.lost = 0
        self.repeated = 0
        self.snapshots = 0
        self.closed: int | None = None
        self.caught_up = asyncio.Event()
        self._target: int | None = None

    def expect(self, version: int) -> None:
        """Set `caught_up` once the stream reaches `version` (or ends)."""
        self._target = version
        if self.version >= version or self.closed is not None:
            self.caught_up.set()

    def apply(self, message: dict[str, Any], now: dt.datetime) -> None:
        if message["type"] == "snapshot":
            self.snapshots += 1
            self.seats = dict(message["map"]["seats"])
            self.version = message["map"]["version"]
            return
        if message["type"] != "deltas":
            return
        self.frames += 1
        for delta in message["deltas"]:
            version = delta["version"]
            if version <= self.version:
                self.repeated += 1
                continue
            self.lost += version - self.version - 1
            self.version = version
            self.received += 1
            committed = dt.datetime.fromisoformat(delta["committed_at"])
            self.latencies.append((now - committed).total_seconds() * 1000)
            if "seat_id" in delta:
                self.seats[delta["seat_id"]] = delta["state"]

    async def run(self, ws: ClientConnection, ready: asyncio.Event) -> None:
        try:
            async for raw in ws:
                now = dt.datetime.now(dt.UTC)
                self.apply(orjson.loads(raw), now)
                if self.snapshots == 1:
                    ready.set()
                if self._target is not None and self.version >= self._target:
                    self.caught_up.set()
        except ConnectionClosed:
            pass
        self.closed = ws.close_code
        self.caught_up.set()


async def watch_and_buy(
    base_url: str,
    backend: str,
    clients: int,
    buyers: int,
    seats: int,
    duration: float,
    cpu: Any,
) -> dict[str, object]:
    ws_url = base_url.replace("http", "ws", 1)
    async with client_pool(base_url, buyers) as http:
        client = http[0]
        session_id = await session_on_sale(client, seats)
        accounts = await buyer_accounts(client, max(4, buyers // 4), at_once=4)
        subscribers = [Subscriber() for _ in range(clients)]
        sockets: list[ClientConnection] = []
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        joining = asyncio.Semaphore(CONNECTING)
        joined = [0]

        async def join(subscriber: Subscriber) -> None:
            async with joining:
                ws = await connect(
                    f"{ws_url}/ws/sessions/{session_id}",
                    compression=None,
                    max_size=None,
                    open_timeout=120,
                    proxy=None,
                )
                sockets.append(ws)
                ready = asyncio.Event()
                tasks.append(asyncio.create_task(subscriber.run(ws, ready)))
                await ready.wait()
            joined[0] += 1
            if joined[0] % 200 == 0:
                print(f"  {joined[0]}/{clients} subscribers have their snapshot", file=sys.stderr)

        await asyncio.gather(*(join(subscriber) for subscriber in subscribers))
        connect_s = time.monotonic() - started
        print(
            f"  {clients} subscribers connected in {connect_s:.1f}s; {buyers} buyers start",
            file=sys.stderr,
        )

        orders: Counter[str] = Counter()
        door: Counter[str] = Counter()
        cpu_before, bench_cpu_before = cpu(), time.process_time()
        begun = time.monotonic()
        deadline = begun + duration

        async def buy(n: int) -> None:
            auth = accounts[n % len(accounts)]
            web = http[n % len(http)]
            while time.monotonic() < deadline:
                response = await request(
                    web,
                    "POST",
                    "/api/orders",
                    json={
                        "tickets": [
                            {"session_id": session_id, "category": CATEGORY, "quantity": 1}
                        ],
                        "payment_token": "tok_visa",
                    },
                    headers={"Idempotency-Key": str(uuid.uuid4()), **auth},
                )
                if response.status_code != 202:
                    kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
                    door[f"{response.status_code} {kind}"] += 1
                    if kind == "sold-out" or response.status_code != 409:
                        return
                    continue
                order = await follow_order(web, response, auth, FINAL, 0)
                orders[order["status"]] += 1

        async def progress() -> None:
            while True:
                await asyncio.sleep(2)
                received = sum(s.received for s in subscribers)
                print(
                    f"  {time.monotonic() - begun:5.1f}s  {orders.total()} orders final, "
                    f"{received} deltas received in all",
                    file=sys.stderr,
                )

        reporter = asyncio.create_task(progress())
        await asyncio.gather(*(buy(n) for n in range(buyers)))
        load_s = time.monotonic() - begun
        await settled(client, "agora to settle after the buyers")
        final_map = (await client.get(f"/api/sessions/{session_id}/seats")).json()

        for subscriber in subscribers:
            subscriber.expect(final_map["version"])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                for subscriber in subscribers:
                    await subscriber.caught_up.wait()
        cpu_used = cpu() - cpu_before
        bench_cpu = time.process_time() - bench_cpu_before
        sent_latency = histogram_quantiles(
            (await client.get("/metrics")).text,
            "agora_live_delta_latency_seconds",
            {"stream": "seats", "transport": "ws"},
            (0.5, 0.99),
        )
        reporter.cancel()
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    latencies = [ms for s in subscribers for ms in s.latencies]
    received = sum(s.received for s in subscribers)
    behind = sum(1 for s in subscribers if s.version < final_map["version"])
    wrong = sum(1 for s in subscribers if s.seats != final_map["seats"])
    return {
        "scenario": "live",
        "backend": backend,
        "clients": clients,
        "buyers": buyers,
        "seats": seats,
        "duration_s": round(load_s, 1),
        "connect_s": round(connect_s, 1),
        "orders": dict(orders),
        "refused": dict(door),
        "changes": final_map["version"],
        "deltas_received": received,
        "deltas_per_s": round(received / load_s, 1),
        "messages_per_client": round(sum(s.frames for s in subscribers) / clients, 1),
        "deltas_lost": sum(s.lost for s in subscribers),
        "deltas_repeated": sum(s.repeated for s in subscribers),
        "resyncs": sum(s.snapshots - 1 for s in subscribers),
        "clients_behind_at_end": behind,
        "maps_wrong_at_end": wrong,
        "closed_early": dict(Counter(str(s.closed) for s in subscribers if s.closed is not None)),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
        # the server's own figure (commit to handed to the connection), from its histogram:
        # the bucket's upper bound, in ms
        "server_p50_ms": sent_latency[0],
        "server_p99_ms": sent_latency[1],
        "cpu_s": round(cpu_used, 1),
        "bench_cpu_s": round(bench_cpu, 1),
        # `agora up` and its children, from the buyers' start until every subscriber caught up
        "cpu_ms_per_1000_deltas": round(1_000_000 * cpu_used / received, 1) if received else None,
    }


def histogram_quantiles(
    text: str, name: str, labels: dict[str, str], shares: tuple[float, ...]
) -> list[float | None]:
    """The upper bounds (ms) of the buckets holding the `shares` quantiles of a Prometheus
    histogram's samples with `labels` (None past the last finite bucket)."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    found: list[float | None] = []
    for share in shares:
        bound = next((le for le, count in buckets if total and count >= share * total), None)
        found.append(None if bound is None or bound == float("inf") else round(bound * 1000, 1))
    return found


def bench_live(
    *,
    backend: str,
    replicas: int,
    clients: int,
    buyers: int,
    seats: int,
    duration: float,
    profile: Path | None = None,
) -> dict[str, object]:
    with running_agora_process(backend, replicas, [], profile=profile) as (base_url, pid):
        return asyncio.run(
            watch_and_buy(
                base_url, backend, clients, buyers, seats, duration, lambda: cpu_seconds(pid)
            )
        )
