"""`agora infra up | down | status`: real PostgreSQL, Redis and Apache Kafka on 127.0.0.1.

`up` prints nothing but `export AGORA_...=...` lines on stdout, so that
`eval "$(agora infra up)"` configures a shell; its progress goes to stderr. Exit status 1 with
the reason on stderr when a server cannot be started or stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from agora import infra
from agora.infra import InfraError, Ports
from agora.infra.processes import say

infra_app = typer.Typer(
    help="Real PostgreSQL, Redis and Apache Kafka servers on 127.0.0.1 for development and "
    "tests (see docs/infrastructure.md).",
    no_args_is_help=True,
    add_completion=False,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Folder of the servers' data and logs (env AGORA_INFRA_DIR, default ./.agora-infra)",
        show_default=False,
    ),
]


def _fail(error: InfraError) -> NoReturn:
    say(f"error: {error}")
    raise typer.Exit(1)


@infra_app.command()
def up(
    dir: DirOption = None,
    postgres_port: Annotated[
        int | None,
        typer.Option(help="PostgreSQL port (env AGORA_INFRA_POSTGRES_PORT, default 55432)"),
    ] = None,
    redis_port: Annotated[
        int | None, typer.Option(help="Redis port (env AGORA_INFRA_REDIS_PORT, default 56379)")
    ] = None,
    kafka_port: Annotated[
        int | None,
        typer.Option(
            help="First Kafka broker's port; broker i listens on PORT+2i, its controller on "
            "the next port (env AGORA_INFRA_KAFKA_PORT, default 59092)"
        ),
    ] = None,
    kafka_brokers: Annotated[
        int | None,
        typer.Option(
            help="1, or 3 for a three-node KRaft cluster with replication factor 3 "
            "(env AGORA_INFRA_KAFKA_BROKERS, default 1)"
        ),
    ] = None,
    db: Annotated[
        list[str] | None,
        typer.Option(help="Also create this database (repeat the option for more)"),
    ] = None,
) -> None:
    """Start the servers and print their addresses as shell exports.

    Installs what is missing, starts what is not running and waits until every server answers,
    then prints only `export AGORA_...` lines on stdout: eval "$(agora infra up)". Without port
    or broker options, servers already running in the dir keep their settings.
    """
    ports = None
    if postgres_port or redis_port or kafka_port:
        defaults = Ports.from_env()
        ports = Ports(
            postgres=postgres_port or defaults.postgres,
            redis=redis_port or defaults.redis,
            kafka=kafka_port or defaults.kafka,
        )
    try:
        settings = infra.ensure_up(
            dir, ports=ports, kafka_brokers=kafka_brokers, databases=db or ()
        )
    except InfraError as error:
        _fail(error)
    typer.echo(settings.exports(), nl=False)


@infra_app.command()
def down(dir: DirOption = None) -> None:
    """Stop the servers of the infra dir.

    Data stays on disk for the next `up`; nothing running is fine.
    """
    root = infra.infra_dir(dir)
    try:
        stopped = infra.down(root)
    except InfraError as error:
        _fail(error)
    say(f"stopped {', '.join(stopped)}" if stopped else f"nothing was running in {root}")


@infra_app.command()
def status(
    dir: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per server")] = False,
) -> None:
    """Report each server up, starting or down, with its address.

    Exit status 0 only if every server is up.
    """
    try:
        servers = infra.status(dir)
    except InfraError as error:
        _fail(error)
    for server in servers:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "name": server.name,
                        "up": server.up,
                        "state": server.state,
                        "address": server.address,
                        "pid": server.pid,
                        "log": None if server.log is None else str(server.log),
                        "detail": server.detail,
                    }
                )
            )
        else:
            pid = f"pid {server.pid}" if server.pid is not None else "-"
            typer.echo(
                f"{server.name:<9} {server.state:<8} {server.address:<16} "
                f"{pid:<11} {server.detail}".rstrip()
            )
    if not all(server.up for server in servers):
        raise typer.Exit(1)
