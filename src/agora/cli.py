"""The `agora` command."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from agora import __version__, contracts
from agora.infra.cli import infra_app
from agora.settings import Settings

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from fastapi import FastAPI

app = typer.Typer(
    help="Agora: an event-driven marketplace and ticketing backend.",
    no_args_is_help=True,
    add_completion=False,
)
outbox_app = typer.Typer(help="The services' transactional outboxes.", no_args_is_help=True)
dlt_app = typer.Typer(help="Dead letters: events no consumer could apply.", no_args_is_help=True)
events_app = typer.Typer(help="The integration events (the services' contract).")
bench_app = typer.Typer(help="Benchmarks; each prints progress, then one JSON line of figures.")
users_app = typer.Typer(help="Accounts, in the identity service's database.", no_args_is_help=True)
keys_app = typer.Typer(help="The identity service's signing keys.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlt_app, name="dlt")
app.add_typer(events_app, name="events")
app.add_typer(infra_app, name="infra")
app.add_typer(bench_app, name="bench")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of the embedded default's files [env AGORA_DATA_DIR]"),
]


def _settings(**overrides: object) -> Settings:
    """Settings from the environment, with the flags given on the command line on top."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings.model_validate({**Settings().model_dump(), **given})


@app.command()
def version() -> None:
    """Print Agora's version."""
    typer.echo(__version__)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _serve(app: FastAPI, settings: Settings) -> None:
    import uvicorn

    drain: Callable[[], None] | None = getattr(app.state, "drain", None)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)  # the app's lifespan has started everything
            # What start-up allocated (modules, compiled statements, models) lives as long as
            # the process: out of the collector's sight, full collections stop scanning it.
            gc.collect()
            gc.freeze()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if drain is not None:  # long polls answer now instead of holding the shutdown
                drain()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    Server(config).run()


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8000]")] = None,
    data_dir: DataDir = None,
    seed: Annotated[
        Path | None,
        typer.Option(help="JSON list of products to list on first start (default: demo catalog)"),
    ] = None,
    hold_seconds: Annotated[
        float | None, typer.Option(help="How long stock is held for an unpaid order [600]")
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(help="On servers: processes of each service [1]"),
    ] = None,
) -> None:
    """Run the platform. With no server configured: every service and the HTTP API in one
    process on the embedded default. With AGORA_KAFKA_BOOTSTRAP and
    AGORA_DATABASE_URL_TEMPLATE set: every service in processes of its own behind a gateway."""
    from agora.runtime.runtime import DataDirInUse, Runtime
    from agora.runtime.supervisor import run_supervisor

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        seed_file=seed,
        hold_seconds=hold_seconds,
        replicas=replicas,
    )
    _logging(settings)
    if settings.uses_servers:
        if not (settings.kafka_bootstrap and settings.database_url_template):
            typer.echo(
                "agora: servers need both AGORA_KAFKA_BOOTSTRAP and AGORA_DATABASE_URL_TEMPLATE "
                '(`eval "$(agora infra up)"` sets them)',
                err=True,
            )
            raise typer.Exit(2)
        raise typer.Exit(run_supervisor(settings))
    typer.echo(
        f"Agora {__version__}: data in {settings.data_dir.resolve()}, "
        f"API on http://{settings.host}:{settings.port} (docs at /docs)",
        err=True,
    )
    try:
        _serve(Runtime(settings).app(), settings)
    except DataDirInUse as error:
        typer.echo(f"agora: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="A service's name, or gateway")],
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8000]")] = None,
) -> None:
    """Run one service (its consumers, workers and HTTP API), or the gateway, in this process.
    Configured by AGORA_* variables; SIGTERM drains it."""
    from agora.runtime.runtime import SERVICE_NAMES, Runtime

    settings = _settings(host=host, port=port)
    _logging(settings)
    if service == "gateway":
        from agora.runtime.runtime import build_gateway

        _serve(build_gateway(settings), settings)
        return
    if service not in SERVICE_NAMES:
        typer.echo(f"agora: no service {service!r}; services: {', '.join(SERVICE_NAMES)}, gateway")
        raise typer.Exit(2)
    _serve(Runtime(settings, [service]).app(), settings)


@app.command()
def migrate() -> None:
    """Create each service's database if missing (PostgreSQL) and apply its migrations."""
    from agora.runtime.supervisor import migrate_all

    asyncio.run(migrate_all(_settings()))


async def _outbox_status(settings: Settings) -> list[tuple[str, int]]:
    from sqlalchemy import MetaData

    from agora.messaging import Database, add_outbox_table, outbox_backlog
    from agora.runtime.runtime import SERVICE_NAMES

    rows = []
    for name in SERVICE_NAMES:
        if not settings.database_url_template and not (settings.data_dir / f"{name}.db").exists():
            continue
        metadata = MetaData()
        table = add_outbox_table(metadata)
        db = Database(settings.database_url(name), metadata)
        try:
            async with db.read() as conn:
                rows.append((name, await outbox_backlog(conn, table)))
        finally:
            await db.dispose()
    return rows


def _require_data(settings: Settings) -> None:
    """On the embedded default, the data folder must hold Agora's files (servers need none)."""
    if settings.uses_servers:
        return
    if not (settings.data_dir / "bus.db").exists():
        where = settings.data_dir.resolve()
        typer.echo(f"agora: no Agora data in {where} (see --data-dir)", err=True)
        raise typer.Exit(1)


@outbox_app.command("status")
def outbox_status(data_dir: DataDir = None) -> None:
    """Events written by each service and not yet published."""
    settings = _settings(data_dir=data_dir)
    _require_data(settings)
    rows = asyncio.run(_outbox_status(settings))
    typer.echo(f"{'service':<16}{'unpublished':>12}")
    for name, backlog in rows:
        typer.echo(f"{name:<16}{backlog:>12}")


async def _with_log(settings: Settings, work):  # type: ignore[no-untyped-def]
    """Run `work(log)` on the log the settings name: the embedded file, or Kafka."""
    from agora.runtime.runtime import build_log

    log = build_log(settings)
    await log.open()
    try:
        return await work(log)
    finally:
        await log.close()


Topic = Annotated[
    str | None, typer.Option(help=f"One of {', '.join(contracts.TOPICS)} (default: all)")
]


def _topics(topic: str | None) -> list[str]:
    if topic is None:
        return list(contracts.TOPICS)
    if topic not in contracts.TOPICS:
        typer.echo(
            f"agora: unknown topic {topic!r}; topics: {', '.join(contracts.TOPICS)}", err=True
        )
        raise typer.Exit(2)
    return [topic]


@dlt_app.command("list")
def dlt_list(
    data_dir: DataDir = None,
    topic: Topic = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List dead letters, with the error that sent each there."""
    from agora.messaging import list_dead_letters

    settings = _settings(data_dir=data_dir)
    _require_data(settings)
    letters = asyncio.run(_with_log(settings, lambda log: list_dead_letters(log, _topics(topic))))
    if as_json:
        for letter in letters:
            typer.echo(
                orjson.dumps(
                    {
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "key": letter.key,
                        "group": letter.group,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "failed_at": letter.failed_at,
                        "replayed": letter.replayed,
                    }
                )
            )
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for letter in letters:
        state = "replayed" if letter.replayed else "pending"
        typer.echo(
            f"{letter.topic}[{letter.partition}]@{letter.offset} key={letter.key} "
            f"group={letter.group} attempts={letter.attempts} {state}\n    {letter.error}"
        )


@dlt_app.command("replay")
def dlt_replay(data_dir: DataDir = None, topic: Topic = None) -> None:
    """Deliver dead letters not yet replayed to their topic again (consumers that applied them
    already skip them)."""
    from agora.messaging import replay_dead_letters

    settings = _settings(data_dir=data_dir)
    _require_data(settings)
    count = asyncio.run(_with_log(settings, lambda log: replay_dead_letters(log, _topics(topic))))
    typer.echo(f"replayed {count} dead letter{'s' if count != 1 else ''}")


@events_app.command("schemas")
def event_schemas() -> None:
    """Print the JSON Schema of every integration event, by type."""
    typer.echo(orjson.dumps(contracts.registry().json_schemas(), option=orjson.OPT_INDENT_2))


async def _with_identity(settings: Settings, work):  # type: ignore[no-untyped-def]
    """Run `work(service)` on the identity service's database (no server needed: it writes
    the database directly, whether or not Agora is running)."""
    from sqlalchemy.exc import DBAPIError

    from agora.runtime.runtime import Runtime

    if not settings.uses_servers:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, ["identity"])
    (service,) = runtime.services
    try:
        if settings.should_migrate_on_start:
            await service.migrate()
        return await work(service)
    except DBAPIError as error:
        typer.echo(f"agora: identity's database: {error.orig!r} (run `agora migrate`?)", err=True)
        raise typer.Exit(1) from None
    finally:
        await service.platform.db.dispose()
        if runtime.redis is not None:
            await runtime.redis.aclose()


def _read_password(from_stdin: bool) -> str:
    from agora.services.identity.domain import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        typer.echo(
            f"agora: a password has {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters",
            err=True,
        )
        raise typer.Exit(2)
    return password


@users_app.command("create-admin")
def users_create_admin(
    email: Annotated[str, typer.Option(help="The admin's e-mail address")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an admin account (admins cannot register over HTTP)."""
    from agora.services.identity.domain import is_valid_email, normalise_email
    from agora.services.identity.handlers import EmailTaken

    if not is_valid_email(normalise_email(email)):
        typer.echo(f"agora: {email!r} is not a valid e-mail address", err=True)
        raise typer.Exit(2)
    password = _read_password(password_stdin)
    settings = _settings(data_dir=data_dir)
    try:
        user = asyncio.run(
            _with_identity(settings, lambda service: service.create_admin(email, password))
        )
    except EmailTaken as error:
        typer.echo(f"agora: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created admin {user.email} (user id {user.id})")


@keys_app.command("rotate")
def keys_rotate(
    data_dir: DataDir = None,
    activate_after: Annotated[
        float,
        typer.Option(
            help="Seconds until the new key signs (it is published at once, so that every "
            "verifier knows it by then); 0 after a key leaked"
        ),
    ] = 30.0,
) -> None:
    """Add a signing key and retire the ones in use: tokens they signed stay valid until they
    expire; new tokens are signed with the new key once it is active."""
    import datetime as dt

    settings = _settings(data_dir=data_dir)
    rotation = asyncio.run(
        _with_identity(
            settings,
            lambda service: service.rotate_keys(dt.timedelta(seconds=max(0.0, activate_after))),
        )
    )
    typer.echo(
        f"new signing key {rotation.new}, signing from {rotation.active_at.isoformat()}; "
        f"retired: {', '.join(rotation.retired) or 'none'}"
    )


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


def main() -> None:
    app()
