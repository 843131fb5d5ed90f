"""The soak: mixed load on the servers topology while its servers and processes fail at random.

Starts PostgreSQL, Redis and Kafka of its own (a temporary infra dir on free ports: the servers
of `agora infra up` are never touched) and `agora up` on them, one process per service. Buyers
then run a closed loop of mixed orders for `--minutes`: goods paid with a good card, a declined
card and a card that fails twice before it succeeds; seats of a session, best available, paid at
once; and orders left unpaid, which expire when their hold runs out (holds are short here). Every
order is placed with an Idempotency-Key and sent again, as a careful client does, until the
platform accepts it; what the clients saw on the way is counted by kind.

Meanwhile, one fault at a time, in a shuffled cycle so that every kind comes round:

- `postgres-kill`: PostgreSQL killed (SIGKILL), down for a while, started again;
- `postgres-restart`: PostgreSQL stopped and started (`pg_ctl stop -m fast`);
- `kafka-kill`: the Kafka broker killed (SIGKILL), down for a while, started again;
- `redis-kill`: Redis killed (SIGKILL) and started again empty;
- `replica-kill`: one process of a random service killed (SIGKILL); the supervisor starts
  another;
- `network`: the network between the services and PostgreSQL (a toxiproxy, `agora.infra.
  toxiproxy`) made slow (100 ms more per answer), lossy (every connection reset) or silent
  (nothing forwarded) for a while.

After each fault it measures the recovery: from the moment the server is back until the
platform is ready (`/readyz`), and until a probe order placed then is confirmed. When the load
stops, every accepted order must be final within a bound; then `agora check` verifies the
invariants across the services' databases and the log. Prints progress, a table of the faults,
then one JSON line; exits non-zero when an order is not final or an invariant is violated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from agora.bench.harness import (
    FINAL,
    buyer_accounts,
    client_pool,
    cpu_seconds,
    running_agora_process,
)
from agora.bench.seated import session_on_sale
from agora.infra.config import HOST, InfraSettings, Ports
from agora.infra.ports import port_open
from agora.infra.toxiproxy import Proxy, Toxiproxy

FAULTS = (
    "postgres-kill",
    "postgres-restart",
    "kafka-kill",
    "redis-kill",
    "replica-kill",
    "network",
)

NETWORK_TOXICS: dict[str, tuple[str, dict[str, Any]]] = {
    "slow": ("latency", {"latency": 100}),
    "lossy": ("reset_peer", {"timeout": 0}),
    "silent": ("timeout", {"timeout": 0}),
}
"""What `network` does to the services' connections to PostgreSQL for a while: 100 ms added to
every answer, every connection reset, or nothing forwarded."""

SERVICES = ("identity", "catalog", "inventory", "orders", "payments", "ticketing")
"""The services whose processes `replica-kill` picks from (each consumes and serves)."""

HOLD_SECONDS = 20
"""The installation's hold time in the soak: unpaid orders expire while it runs."""

SEATS = 4000

ACCOUNTS_PER_BUYER = 4
"""Accounts each buyer orders with in turn: a buyer may hold at most 100 seats of a session,
and the seats should last the soak."""

STOCK = 1_000_000


def _mix(draw: random.Random) -> str:
    return draw.choices(
        ["goods", "declined", "flaky-card", "seats", "unpaid"], weights=[40, 10, 10, 25, 15]
    )[0]


class Servers:
    """PostgreSQL, Redis and one Kafka broker in a temporary infra dir on free ports, each of
    which can be killed and started again on the same port (its port is reserved, so that no
    client's connection takes it while the server is away)."""

    def __init__(self, root: Path) -> None:
        from agora.infra.kafka import KafkaCluster
        from agora.infra.postgres import PostgresServer
        from agora.infra.redis import RedisServer

        self.root = root
        self.ports = Ports(postgres=_free_port(), redis=_free_port(), kafka=_free_port_pair())
        self.postgres = PostgresServer(root / "postgres", self.ports.postgres)
        self.redis = RedisServer(root / "redis", self.ports.redis)
        self.kafka = KafkaCluster(root / "kafka", self.ports, 1)
        self.toxiproxy = Toxiproxy(root / "toxiproxy", _free_port())
        self.network: Proxy | None = None

    def up(self, databases: list[str]) -> InfraSettings:
        """Start the servers and, in front of PostgreSQL, the proxy that `network` spoils."""
        from agora.infra import ensure_up

        settings = ensure_up(self.root, ports=self.ports, kafka_brokers=1, databases=databases)
        self.toxiproxy.start()
        self.network = self.toxiproxy.proxy(
            "postgres", listen=_free_port(), upstream=f"{HOST}:{self.ports.postgres}"
        )
        return settings

    def through_network(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with the services reaching PostgreSQL through the proxy."""
        assert self.network is not None, "up() first"
        template = env["AGORA_DATABASE_URL_TEMPLATE"]
        direct = f"{HOST}:{self.ports.postgres}/"
        assert direct in template, template
        proxied = template.replace(direct, f"{HOST}:{self.network.port}/")
        return {**env, "AGORA_DATABASE_URL_TEMPLATE": proxied}

    def down(self) -> None:
        from agora.infra import down

        self.toxiproxy.stop()
        down(self.root)

    def kill(self, server: str) -> None:
        pid_of, port = {
            "postgres": (self.postgres.pid, self.ports.postgres),
            "redis": (self.redis.pid, self.ports.redis),
            "kafka": (self.kafka.nodes[0].pid, self.ports.kafka),
        }[server]
        pid = pid_of()
        if pid is None:
            raise RuntimeError(f"{server} of the soak is not running")
        os.kill(pid, signal.SIGKILL)
        # Gone once `pid_of` says so (it reaps a server that is a child of this process, whose
        # zombie would look alive) and its port is closed: a dying process's command line is
        # empty before its sockets are closed.
        deadline = time.monotonic() + 30
        while pid_of() is not None or port_open(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} (pid {pid}) outlived SIGKILL by 30 s")
            time.sleep(0.05)

    def start(self, server: str) -> None:
        if server == "postgres":
            self.postgres.ensure_up()
        elif server == "redis":
            self.redis.ensure_up()
        else:
            self.kafka.prepare(log=self.root / "logs" / "maven.log")  # jars found, node formatted
            self.kafka.start()
            self.kafka.wait_ready()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _free_port_pair() -> int:
    """A port whose next port is free too (a Kafka broker and its controller)."""
    for _ in range(100):
        port = _free_port()
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports found")


@dataclass
class Fault:
    kind: str
    target: str
    begun_s: float
    outage_s: float = 0.0
    ready_s: float | None = None
    """From the server back (or the process killed) until `/readyz` answered 200."""
    confirmed_s: float | None = None
    """From the server back until a probe order placed then was CONFIRMED."""


@dataclass
class Load:
    """What the buyers did and saw."""

    accepted: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    """Order id → the kind of order and its buyer's Authorization, for every order the
    platform accepted (202)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    """What answered a request other than a success, by kind: `HTTP 503 database-unavailable`,
    `ConnectError`, ..."""


class Soak:
    def __init__(
        self,
        base_url: str,
        supervisor: int,
        servers: Servers,
        *,
        buyers: int,
        outage: float,
        pause: float,
        faults: list[str],
        draw: random.Random,
    ) -> None:
        self.base_url = base_url
        self.supervisor = supervisor
        self.servers = servers
        self.buyers = buyers
        self.outage = outage
        self.pause = pause
        self.kinds = faults
        self.draw = draw
        self.load = Load()
        self.faults: list[Fault] = []
        self.current = "none"
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def send(
        self, client: httpx.AsyncClient, method: str, url: str, **options: Any
    ) -> httpx.Response:
        """The request, sent again after a pause until it is answered with neither a 5xx nor
        409 in-flight (the same Idempotency-Key's first request still being worked on), for up
        to ten minutes. What came back in between is counted."""
        deadline = time.monotonic() + 600
        while True:
            try:
                response = await client.request(method, url, **options)
            except httpx.TransportError as error:
                self.load.seen[type(error).__name__] += 1
            else:
                retry = response.status_code >= 500 or (
                    response.status_code == 409 and _kind(response) == "idempotency-key-in-flight"
                )
                if not retry:
                    return response
                self.load.seen[f"HTTP {response.status_code} {_kind(response)}".strip()] += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {url} unanswered for ten minutes")
            await asyncio.sleep(0.5)

    async def place(
        self, client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
    ) -> httpx.Response:
        headers = {"Idempotency-Key": str(uuid.uuid4()), **auth}
        return await self.send(client, "POST", "/api/orders", json=body, headers=headers)

    async def follow(self, client: httpx.AsyncClient, order_id: str, auth: dict[str, str]) -> str:
        """Wait for the order to be final (one request per change, each waiting for it)."""
        etag = ""
        while True:
            headers = {**auth, "Prefer": "wait=20", **({"If-None-Match": etag} if etag else {})}
            response = await self.send(client, "GET", f"/api/orders/{order_id}", headers=headers)
            if response.status_code == 304:
                continue
            response.raise_for_status()
            status = str(response.json()["status"])
            if status in FINAL:
                return status
            etag = response.headers["ETag"]

    async def buyer(
        self,
        client: httpx.AsyncClient,
        accounts: list[dict[str, str]],
        session_id: str,
        until: float,
        draw: random.Random,
    ) -> None:
        while time.monotonic() < until:
            kind = _mix(draw)
            auth = draw.choice(accounts)
            body: dict[str, Any] = {"payment_token": "tok_visa"}
            if kind == "seats":
                body["tickets"] = [
                    {
                        "session_id": session_id,
                        "category": "standard",
                        "quantity": draw.randint(1, 4),
                    }
                ]
            else:
                body["items"] = [{"product_id": "soak-item", "quantity": draw.randint(1, 3)}]
            if kind == "declined":
                body["payment_token"] = "tok_chargeDeclined"
            elif kind == "flaky-card":
                body["payment_token"] = "tok_processing_error"
            elif kind == "unpaid":
                del body["payment_token"]
            response = await self.place(client, auth, body)
            if response.status_code != 202:
                self.load.outcomes[f"refused {response.status_code} {_kind(response)}"] += 1
                await asyncio.sleep(0.5)
                continue
            order_id = str(response.json()["id"])
            self.load.accepted[order_id] = (kind, auth)
            if kind != "unpaid":  # left to expire; the loop goes on
                await self.follow(client, order_id, auth)

    async def ready(self, client: httpx.AsyncClient) -> None:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz", timeout=10)).status_code == 200:
                    return
            await asyncio.sleep(0.2)

    async def inject(self, kind: str, client: httpx.AsyncClient, auth: dict[str, str]) -> Fault:
        outage = round(self.draw.uniform(self.outage / 2, self.outage), 1)
        fault = Fault(kind, "", round(self.elapsed(), 1))
        if kind == "replica-kill":
            fault.target = self.draw.choice(SERVICES)
            await asyncio.to_thread(_kill_a_process_of, self.supervisor, fault.target)
        elif kind == "network":
            assert self.servers.network is not None
            fault.target = self.draw.choice(sorted(NETWORK_TOXICS))
            toxic, attributes = NETWORK_TOXICS[fault.target]
            with self.servers.network.toxic(toxic, **attributes):
                fault.outage_s = outage
                await asyncio.sleep(outage)
        elif kind == "postgres-restart":
            fault.target = "postgres"
            await asyncio.to_thread(self.servers.postgres.stop)
            await asyncio.to_thread(self.servers.start, "postgres")
        else:
            fault.target = kind.removesuffix("-kill")
            await asyncio.to_thread(self.servers.kill, fault.target)
            if fault.target != "redis":  # Redis comes back at once, empty
                fault.outage_s = outage
                await asyncio.sleep(outage)
            await asyncio.to_thread(self.servers.start, fault.target)
        back = time.monotonic()
        await asyncio.wait_for(self.ready(client), timeout=300)
        fault.ready_s = round(time.monotonic() - back, 2)
        probe = await self.place(
            client,
            auth,
            {"items": [{"product_id": "soak-item", "quantity": 1}], "payment_token": "tok_visa"},
        )
        probe.raise_for_status()
        order_id = str(probe.json()["id"])
        self.load.accepted[order_id] = ("probe", auth)
        status = await asyncio.wait_for(self.follow(client, order_id, auth), timeout=300)
        if status == "CONFIRMED":
            fault.confirmed_s = round(time.monotonic() - back, 2)
        return fault

    async def injector(self, client: httpx.AsyncClient, auth: dict[str, str], until: float) -> None:
        cycle: list[str] = []
        await asyncio.sleep(self.pause)
        while time.monotonic() < until:
            if not cycle:
                cycle = list(self.kinds)
                self.draw.shuffle(cycle)
            kind = cycle.pop()
            self.current = kind
            fault = await self.inject(kind, client, auth)
            self.current = "none"
            self.faults.append(fault)
            print(
                f"  {self.elapsed():6.1f}s  {kind} ({fault.target}): down {fault.outage_s} s, "
                f"ready after {fault.ready_s} s, an order confirmed after {fault.confirmed_s} s",
                file=sys.stderr,
            )
            await asyncio.sleep(self.draw.uniform(self.pause / 2, self.pause))

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(5)
            seen = sum(self.load.seen.values())
            print(
                f"  {self.elapsed():6.1f}s  {len(self.load.accepted)} orders accepted, "
                f"{seen} retried answers, fault now: {self.current}",
                file=sys.stderr,
            )

    async def run(self, minutes: float, settle: float) -> dict[str, Any]:
        async with client_pool(self.base_url, self.buyers + 2) as clients:
            client = clients[0]
            session_id = await session_on_sale(client, SEATS)
            accounts = await buyer_accounts(client, self.buyers * ACCOUNTS_PER_BUYER + 1, at_once=4)
            print(f"  {self.buyers} buyers, session {session_id} on sale", file=sys.stderr)
            self.started = time.monotonic()
            until = self.started + 60 * minutes
            reporter = asyncio.create_task(self.progress())
            try:
                await asyncio.gather(
                    self.injector(client, accounts[-1], until),
                    *(
                        self.buyer(
                            clients[n % len(clients)],
                            accounts[n * ACCOUNTS_PER_BUYER : (n + 1) * ACCOUNTS_PER_BUYER],
                            session_id,
                            until,
                            random.Random(self.draw.random()),
                        )
                        for n in range(self.buyers)
                    ),
                )
                load_s = self.elapsed()
                print(
                    f"  {load_s:6.1f}s  load stopped; waiting for every order to be final",
                    file=sys.stderr,
                )
                final = await asyncio.wait_for(self.all_final(client), timeout=settle)
            except TimeoutError:
                final = None
            finally:
                reporter.cancel()
        return {"load_s": round(load_s, 1), "final": final}

    async def all_final(self, client: httpx.AsyncClient) -> Counter[str]:
        """The final status of every accepted order, by kind of order, once each is final."""
        statuses: Counter[str] = Counter()
        waiting = set(self.load.accepted)
        while waiting:
            for order_id in list(waiting):
                kind, auth = self.load.accepted[order_id]
                response = await self.send(client, "GET", f"/api/orders/{order_id}", headers=auth)
                response.raise_for_status()
                status = str(response.json()["status"])
                if status in FINAL:
                    statuses[f"{kind} {status}"] += 1
                    waiting.discard(order_id)
            if waiting:
                await asyncio.sleep(1)
        return statuses


def _kind(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except ValueError:
        return ""


def _kill_a_process_of(supervisor: int, service: str) -> None:
    found = subprocess.run(
        ["pgrep", "-P", str(supervisor), "-f", f"agora serve {service} "],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not found:
        raise RuntimeError(f"no process of {service} under the supervisor {supervisor}")
    os.kill(int(found[0]), signal.SIGKILL)


def check(env: dict[str, str], data_dir: Path, timeout: float) -> dict[str, Any]:
    """`agora check --json` on the soak's data, every final order included, until it passes or
    `timeout` runs out (a refund or a consumer may still be on its way): the last report, its
    exit code and the runs it took."""
    deadline = time.monotonic() + timeout
    runs = 0
    while True:
        runs += 1
        done = subprocess.run(
            [
                *(sys.executable, "-m", "agora", "check", "--json"),
                *("--settle-seconds", "0", "--data-dir", str(data_dir)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, **env},
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            sys.stderr.write(done.stderr)
            report = orjson.loads(done.stdout) if done.stdout.strip() else None
            return {"exit_code": done.returncode, "runs": runs, "report": report}
        time.sleep(1)  # the pause between two runs of the checker


@contextlib.contextmanager
def soak_servers() -> Iterator[Servers]:
    # Not under the system's default temporary folder's private subfolders: as root the
    # PostgreSQL server runs as user postgres, who must be able to enter every folder above.
    root = Path(tempfile.mkdtemp(prefix="agora-soak-"))
    root.chmod(0o755)
    servers = Servers(root)
    try:
        yield servers
    finally:
        servers.down()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def bench_soak(
    *,
    minutes: float,
    buyers: int,
    outage: float,
    pause: float,
    faults: list[str],
    replicas: int,
    settle: float,
    random_seed: int,
) -> dict[str, Any]:
    from agora.runtime.runtime import SERVICE_NAMES

    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise SystemExit(f"agora bench soak: unknown faults {unknown}; known: {list(FAULTS)}")
    draw = random.Random(random_seed)
    with soak_servers() as servers:
        print(f"  servers of the soak in {servers.root}", file=sys.stderr)
        settings = servers.up(list(SERVICE_NAMES))
        env = {
            **servers.through_network(settings.isolated_env("soak")),
            "AGORA_REPLICAS": str(replicas),
            "AGORA_HOLD_SECONDS": str(HOLD_SECONDS),
        }
        data_dir = servers.root / "data"
        seed = [
            {
                "id": "soak-item",
                "name": "Soak item",
                "price": "10.00",
                "currency": "EUR",
                "stock": STOCK,
            }
        ]
        with running_agora_process("servers", replicas, seed, servers=env, data_dir=data_dir) as (
            base_url,
            pid,
        ):
            cpu_before = cpu_seconds(pid)
            soak = Soak(
                base_url,
                pid,
                servers,
                buyers=buyers,
                outage=outage,
                pause=pause,
                faults=faults,
                draw=draw,
            )
            ran = asyncio.run(soak.run(minutes, settle))
            cpu_used = cpu_seconds(pid) - cpu_before
            checked = check(env, data_dir, settle) if ran["final"] is not None else None
    final: Counter[str] | None = ran["final"]
    violations = None if checked is None else checked["exit_code"]
    _print_table(soak.faults)
    if checked is not None and checked["report"] is not None:
        for invariant in checked["report"]["invariants"]:
            mark = "OK" if invariant["ok"] else "VIOLATED"
            print(f"  {mark:8}  {invariant['name']}: {invariant['detail']}", file=sys.stderr)
    return {
        "scenario": "soak",
        "minutes": minutes,
        "buyers": buyers,
        "random_seed": random_seed,
        "faults": [vars(fault) for fault in soak.faults],
        "faults_by_kind": dict(Counter(fault.kind for fault in soak.faults)),
        "orders_accepted": len(soak.load.accepted),
        "orders_final": None if final is None else final.total(),
        "final_by_kind": None if final is None else dict(sorted(final.items())),
        "refused": dict(soak.load.outcomes),
        "clients_saw": dict(soak.load.seen.most_common()),
        "check": checked,
        "ok": final is not None and violations == 0 and all(f.confirmed_s for f in soak.faults),
        "cpu_s": round(cpu_used, 1),
        "load_s": ran["load_s"],
    }


def _print_table(faults: list[Fault]) -> None:
    rows: list[tuple[str, ...]] = [
        ("at (s)", "fault", "target", "down (s)", "ready (s)", "confirmed (s)")
    ]
    rows += [
        (
            f"{f.begun_s:.1f}",
            f.kind,
            f.target,
            f"{f.outage_s:.1f}",
            "-" if f.ready_s is None else f"{f.ready_s:.1f}",
            "never" if f.confirmed_s is None else f"{f.confirmed_s:.1f}",
        )
        for f in faults
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)),
            file=sys.stderr,
        )
