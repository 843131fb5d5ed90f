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
import dataclasses
import datetime as dt
import multiprocessing
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from agora.bench.harness import (
    FINAL,
    PLACED,
    buyer_accounts,
    client_pool,
    cpu_seconds,
    follow_order,
    percentile,
    place_order,
    running_agora_process,
)
from agora.bench.seated import CATEGORY, session_on_sale, settled
from agora.runtime.collector import Collector

CONNECTING = 20
"""Subscribers connecting (and taking their snapshot) at once."""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    seats: dict[str, str]


Message = Snapshot | tuple[tuple[int, str | None, str, float], ...]
"""A message as the subscribers read it: a snapshot, or its deltas as (version, seat, state,
commit time as a Unix timestamp); empty for a heartbeat."""

_decoded: dict[bytes, Message] = {}


def decoded(raw: bytes) -> Message:
    """A message every subscriber receives, decoded once for them all (each still checks and
    applies it on its own): a thousand decodings of the same bytes would be the bench's own
    delay in the latency it measures."""
    found = _decoded.get(raw)
    if found is None:
        if len(_decoded) > 64:
            _decoded.clear()
        message = orjson.loads(raw)
        if message["type"] == "snapshot":
            found = Snapshot(message["map"]["version"], message["map"]["seats"])
        elif message["type"] == "deltas":
            found = tuple(
                (
                    delta["version"],
                    delta.get("seat_id"),
                    delta.get("state", ""),
                    dt.datetime.fromisoformat(delta["committed_at"]).timestamp(),
                )
                for delta in message["deltas"]
            )
        else:
            found = ()
        _decoded[raw] = found
    return found


class Subscriber(asyncio.Protocol):
    """One client of the session's stream, applying what it receives to its own map.

    A connection's protocol on the websockets library's sans-I/O core: what arrives is handled in
    the read's callback (a thousand of them cost the bench little, so the latency measured is
    the server's, not the bench's own backlog), stamped with the time the read came in."""

    def __init__(self, url: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.transport: asyncio.Transport | None = None
        self.seats: dict[str, str] = {}
        self.version = -1
        self.latencies: list[float] = []
        self.received = 0
        self.frames = 0
        self.lost = 0
        self.repeated = 0
        self.snapshots = 0
        self.closed: int | None = None
        self.ready = asyncio.Event()
        """Set on the first snapshot, or when the stream ends."""
        self.ended = asyncio.Event()
        self.caught_up = asyncio.Event()
        self._target: int | None = None
        self._parts: list[bytes] = []

    def expect(self, version: int) -> None:
        """Set `caught_up` once the stream reaches `version` (or ends)."""
        self._target = version
        if self.version >= version or self.closed is not None:
            self.caught_up.set()

    def apply(self, message: Message, now: float) -> None:
        if isinstance(message, Snapshot):
            self.snapshots += 1
            self.seats = dict(message.seats)
            self.version = message.version
            self.ready.set()
            return
        if not message:  # a heartbeat
            return
        self.frames += 1
        for version, seat_id, state, committed in message:
            if version <= self.version:
                self.repeated += 1
                continue
            self.lost += version - self.version - 1
            self.version = version
            self.received += 1
            self.latencies.append((now - committed) * 1000)
            if seat_id is not None:
                self.seats[seat_id] = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if not isinstance(event, Frame):  # the handshake's answer
                if self.ws.handshake_exc is not None:
                    print(f"  refused: {self.ws.handshake_exc}", file=sys.stderr)
            elif event.opcode in (Opcode.TEXT, Opcode.CONT):
                self._parts.append(bytes(event.data))
                if event.fin:
                    self.apply(decoded(b"".join(self._parts)), now)
                    self._parts.clear()
        self._flush()
        if self._target is not None and self.version >= self._target:
            self.caught_up.set()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.ws.close_code or 1006
        for done in (self.ready, self.caught_up, self.ended):
            done.set()

    def close(self) -> None:
        if self.transport is not None and self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        data = self.ws.data_to_send()
        if data and data[-1] == b"":  # the library's end of the stream: close the connection
            self.transport.write(b"".join(data))
            self.transport.close()
        elif data:
            self.transport.write(b"".join(data))


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
    async with client_pool(base_url, 1) as http:
        client = http[0]
        session_id = await session_on_sale(client, seats)
        accounts = await buyer_accounts(client, max(4, buyers // 4), at_once=4)
        url = f"{ws_url}/ws/sessions/{session_id}"
        subscribers = [Subscriber(url) for _ in range(clients)]
        where = parse_uri(url)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        joining = asyncio.Semaphore(CONNECTING)
        joined = [0]

        async def join(subscriber: Subscriber) -> None:
            async with joining:
                await loop.create_connection(lambda: subscriber, where.host, where.port)
                async with asyncio.timeout(120):
                    await subscriber.ready.wait()
                if subscriber.closed is not None:
                    raise RuntimeError(f"a subscriber's stream ended with {subscriber.closed}")
            joined[0] += 1
            if joined[0] % 200 == 0:
                print(f"  {joined[0]}/{clients} subscribers have their snapshot", file=sys.stderr)

        await asyncio.gather(*(join(subscriber) for subscriber in subscribers))
        connect_s = time.monotonic() - started
        print(
            f"  {clients} subscribers connected in {connect_s:.1f}s; {buyers} buyers start",
            file=sys.stderr,
        )

        # The subscribers' maps are ten million references a full collection would walk
        # through (a pause of a tenth of a second, every few seconds): as in the server.
        Collector().install()
        cpu_before, bench_cpu_before = cpu(), time.process_time()
        begun = time.monotonic()

        async def progress() -> None:
            while True:
                await asyncio.sleep(2)
                received = sum(s.received for s in subscribers)
                print(
                    f"  {time.monotonic() - begun:5.1f}s  {received} deltas received in all",
                    file=sys.stderr,
                )

        reporter = asyncio.create_task(progress())
        # The buyers in a process of their own: their HTTP clients' work does not delay the
        # subscribers' reads (the latency measured is the platform's).
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            orders, door, buyers_cpu = await loop.run_in_executor(
                pool, buy_in_process, base_url, session_id, accounts, buyers, duration
            )
        finally:  # without waiting for its end here: it would stop the subscribers' reads
            pool.shutdown(wait=False)
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
        bench_cpu = time.process_time() - bench_cpu_before + buyers_cpu
        sent_latency = histogram_quantiles(
            (await client.get("/metrics")).text,
            "agora_live_delta_latency_seconds",
            {"stream": "seats", "transport": "ws"},
            (0.5, 0.99),
        )
        reporter.cancel()
        for subscriber in subscribers:
            subscriber.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                for subscriber in subscribers:
                    await subscriber.ended.wait()

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
        "orders": orders,
        "refused": door,
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


def buy_in_process(
    base_url: str, session_id: str, accounts: list[dict[str, str]], buyers: int, duration: float
) -> tuple[dict[str, int], dict[str, int], float]:
    """`buyers` buyers in a closed loop for `duration` seconds, each ordering one best seat
    paid at once and following it until final: the orders by final state, the refusals by
    kind, and the CPU seconds it took."""
    return asyncio.run(_buy(base_url, session_id, accounts, buyers, duration))


async def _buy(
    base_url: str, session_id: str, accounts: list[dict[str, str]], buyers: int, duration: float
) -> tuple[dict[str, int], dict[str, int], float]:
    orders: Counter[str] = Counter()
    door: Counter[str] = Counter()
    deadline = time.monotonic() + duration

    async def buy(n: int, web: httpx.AsyncClient) -> None:
        auth = accounts[n % len(accounts)]
        while time.monotonic() < deadline:
            response = await place_order(
                web,
                {
                    "tickets": [{"session_id": session_id, "category": CATEGORY, "quantity": 1}],
                    "payment_token": "tok_visa",
                },
                auth,
                0,
            )
            if response.status_code not in PLACED:
                kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
                door[f"{response.status_code} {kind}"] += 1
                if kind == "sold-out" or response.status_code != 409:
                    return
                continue
            order = await follow_order(web, response, auth, FINAL, 0)
            orders[order["status"]] += 1

    async with client_pool(base_url, buyers) as http:
        await asyncio.gather(*(buy(n, http[n % len(http)]) for n in range(buyers)))
    return dict(orders), dict(door), time.process_time()


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
