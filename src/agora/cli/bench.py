"""`agora bench`: benchmarks; each prints progress, then one JSON line of figures."""

from __future__ import annotations

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
    units: Annotated[int, typer.Option(help="units on sale")] = 1000,
    buyers: Annotated[int, typer.Option(help="buyers, one unit each")] = 10_000,
    concurrency: Annotated[int, typer.Option(help="buyers at once")] = 500,
    poll: Annotated[float, typer.Option(help=POLL_HELP, min=0)] = 0,
) -> None:
    """Many buyers rush for few units: sell-out time, units sold (never more), refusals."""
    from agora.bench.onsale import bench_onsale as run

    _check_backend(backend)
    result = run(
        backend=backend,
        replicas=replicas,
        units=units,
        buyers=buyers,
        concurrency=concurrency,
        poll=poll,
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
