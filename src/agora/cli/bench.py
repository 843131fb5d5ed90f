"""`agora bench`: benchmarks; each prints progress, then one JSON line of figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

bench_app = typer.Typer(help="Benchmarks; each prints progress, then one JSON line of figures.")


Backend = Annotated[
    str,
    typer.Option(
        help="embedded (one process, SQLite) or servers (PostgreSQL + Kafka + Redis from "
        "`agora infra up`, one process per service)"
    ),
]


def _check_backend(backend: str) -> None:
    if backend not in {"embedded", "servers"}:
        typer.echo("agora: --backend is embedded or servers", err=True)
        raise typer.Exit(2)


POLL_HELP = (
    "seconds between a buyer's status checks; 0: one request per change of the order, each "
    "waiting for the next (If-None-Match + Prefer: wait)"
)


@bench_app.command("saga")
def bench_saga(
    backend: Backend = "embedded",
    replicas: Annotated[int, typer.Option(help="servers: processes per service")] = 1,
    duration: Annotated[float, typer.Option(help="seconds of load measured")] = 20,
    concurrency: Annotated[int, typer.Option(help="buyers in the closed loop")] = 16,
    poll: Annotated[float, typer.Option(help=POLL_HELP, min=0)] = 0,
    warmup: Annotated[float, typer.Option(help="seconds of load before measuring", min=0)] = 5,
) -> None:
    """Closed-loop sagas: buyers order and wait for CONFIRMED, then order again."""
    from agora.bench.saga import bench_saga as run

    _check_backend(backend)
    result = run(
        backend=backend,
        replicas=replicas,
        duration=duration,
        concurrency=concurrency,
        poll=poll,
        warmup=warmup,
    )
    typer.echo(orjson.dumps(result))


@bench_app.command("onsale")
def bench_onsale(
    backend: Backend = "embedded",
    replicas: Annotated[int, typer.Option(help="servers: processes per service")] = 1,
    units: Annotated[
        int | None, typer.Option(help="units on sale (default 1,000; not with --seated)")
    ] = None,
    buyers: Annotated[
        int | None,
        typer.Option(help="buyers, one order each (default 10,000; 100,000 with --seated)"),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="buyers at once (default 500; 1,000 with --seated)")
    ] = None,
    poll: Annotated[float, typer.Option(help=POLL_HELP, min=0)] = 0,
    seated: Annotated[
        bool,
        typer.Option(
            help="one session's seats instead of a product's units: each buyer asks for 1 to 4 "
            "best-available seats"
        ),
    ] = False,
    seats: Annotated[int, typer.Option(help="--seated: seats of the session", min=1)] = 10_000,
    random_seed: Annotated[
        int, typer.Option(help="--seated: seed of the seats each buyer asks for")
    ] = 0,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="run `agora up` under cProfile and write its statistics here "
            "(`python -m pstats FILE`; on servers the supervisor only)"
        ),
    ] = None,
) -> None:
    """Many buyers rush for few units (with --seated, one session's best-available seats):
    sell-out time, units or seats sold (never more, no seat twice), refusals."""
    _check_backend(backend)
    if seated:
        if units is not None:
            typer.echo("agora: --units is for goods; give --seats with --seated", err=True)
            raise typer.Exit(2)
        from agora.bench.seated import bench_seated

        result = bench_seated(
            backend=backend,
            replicas=replicas,
            seats=seats,
            buyers=100_000 if buyers is None else buyers,
            concurrency=1000 if concurrency is None else concurrency,
            poll=poll,
            random_seed=random_seed,
            profile=profile,
        )
    else:
        from agora.bench.onsale import bench_onsale as run

        result = run(
            backend=backend,
            replicas=replicas,
            units=1000 if units is None else units,
            buyers=10_000 if buyers is None else buyers,
            concurrency=500 if concurrency is None else concurrency,
            poll=poll,
            profile=profile,
        )
    typer.echo(orjson.dumps(result))


@bench_app.command("live")
def bench_live(
    backend: Backend = "embedded",
    replicas: Annotated[int, typer.Option(help="servers: processes per service")] = 1,
    clients: Annotated[
        int, typer.Option(help="WebSocket subscribers of the session", min=1)
    ] = 1000,
    buyers: Annotated[int, typer.Option(help="buyers in the closed loop", min=1)] = 100,
    seats: Annotated[int, typer.Option(help="seats of the session", min=1)] = 10_000,
    duration: Annotated[float, typer.Option(help="seconds the buyers buy")] = 20,
    profile: Annotated[
        Path | None, typer.Option(help="run `agora up` under cProfile and write its statistics")
    ] = None,
) -> None:
    """Live seat maps: subscribers watch one session over WebSocket while buyers hold and buy
    its seats; commit-to-received latency at the subscribers, deltas lost (must be 0)."""
    from agora.bench.live import bench_live as run

    _check_backend(backend)
    result = run(
        backend=backend,
        replicas=replicas,
        clients=clients,
        buyers=buyers,
        seats=seats,
        duration=duration,
        profile=profile,
    )
    typer.echo(orjson.dumps(result))


@bench_app.command("relay")
def bench_relay(
    events: Annotated[int, typer.Option(help="outbox rows to relay")] = 20_000,
    batch_size: Annotated[int, typer.Option(help="rows per relay step and per raw batch")] = 500,
) -> None:
    """Outbox relay (PostgreSQL → Kafka) throughput against a raw produce loop, and the ratio."""
    from agora.bench.relay import bench_relay as run

    typer.echo(orjson.dumps(run(events=events, batch_size=batch_size)))


@bench_app.command("limit")
def bench_limit(
    duration: Annotated[int, typer.Option(help="seconds of pgbench")] = 15,
    clients: Annotated[int, typer.Option(help="pgbench client connections")] = 8,
    jobs: Annotated[int, typer.Option(help="pgbench threads")] = 2,
    products: Annotated[int, typer.Option(help="rows of the stock table")] = 5000,
    measured: Annotated[
        float | None, typer.Option(help="sagas/s measured by `bench saga`, to print its share")
    ] = None,
) -> None:
    """The machine's limit: saga-step transactions/s on PostgreSQL (pgbench), as sagas/s."""
    from agora.bench.limit import bench_limit as run

    result = run(
        duration=duration, clients=clients, jobs=jobs, products=products, measured=measured
    )
    typer.echo(orjson.dumps(result))


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="minutes of load and faults", min=0.1)] = 10,
    buyers: Annotated[int, typer.Option(help="buyers in the closed loop", min=1)] = 8,
    outage: Annotated[
        float, typer.Option(help="longest time a killed server stays down, seconds", min=1)
    ] = 20,
    pause: Annotated[
        float, typer.Option(help="longest time between two faults, seconds", min=1)
    ] = 30,
    faults: Annotated[
        str,
        typer.Option(
            help="the faults to inject, comma-separated: postgres-kill, postgres-restart, "
            "kafka-kill, redis-kill, replica-kill, network"
        ),
    ] = "postgres-kill,postgres-restart,kafka-kill,redis-kill,replica-kill,network",
    replicas: Annotated[int, typer.Option(help="processes per service")] = 1,
    settle: Annotated[
        float, typer.Option(help="seconds within which every order must be final after the load")
    ] = 180,
    random_seed: Annotated[int, typer.Option(help="seed of the load's and the faults' draws")] = 0,
) -> None:
    """Mixed load on servers of its own while they fail at random (one fault at a time), then
    `agora check`: recovery per fault, what clients saw, the invariants. Exits 1 on a
    violation or an order that did not end."""
    from agora.bench.soak import bench_soak as run

    result = run(
        minutes=minutes,
        buyers=buyers,
        outage=outage,
        pause=pause,
        faults=[kind.strip() for kind in faults.split(",") if kind.strip()],
        replicas=replicas,
        settle=settle,
        random_seed=random_seed,
    )
    typer.echo(orjson.dumps(result))
    if not result["ok"]:
        raise typer.Exit(1)
