"""`agora up`, `agora serve` and `agora migrate`: running the platform."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agora import __version__
from agora.cli.settings import DataDir, configure_logging, fail, reported_as, settings_from
from agora.settings import Settings

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI

__all__ = ["migrate", "serve", "up"]


def _serve(app: FastAPI, settings: Settings) -> None:
    import uvicorn

    from agora.runtime.collector import Collector
    from agora.runtime.server import uvicorn_config

    drain: Callable[[], None] | None = getattr(app.state, "drain", None)
    drained: Callable[[], Awaitable[None]] | None = getattr(app.state, "drained", None)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)  # the app's lifespan has started everything
            Collector().install()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if drain is not None:  # long polls answer now instead of holding the shutdown
                drain()
            if drained is not None:  # live streams send their close frame first
                await drained()
            await super().shutdown(sockets)

    Server(uvicorn_config(app, settings)).run()


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
    AGORA_DATABASE_URL_TEMPLATE set: every service in processes of its own behind nginx."""
    from agora.runtime.runtime import Runtime
    from agora.runtime.supervisor import SupervisorError, run_supervisor

    settings = settings_from(
        host=host,
        port=port,
        data_dir=data_dir,
        seed_file=seed,
        hold_seconds=hold_seconds,
        replicas=replicas,
    )
    configure_logging(settings)
    _check_seed(settings)
    if settings.uses_servers:
        if not (settings.kafka_bootstrap and settings.database_url_template):
            fail(
                "servers need both AGORA_KAFKA_BOOTSTRAP and AGORA_DATABASE_URL_TEMPLATE "
                '(`eval "$(agora infra up)"` sets them)',
                status=2,
            )
        try:
            status = run_supervisor(settings)
        except SupervisorError as error:
            fail(str(error))
        raise typer.Exit(status)
    _check_data_dir(settings)
    app = _built(lambda: Runtime(settings).app())
    typer.echo(
        f"Agora {__version__}: data in {settings.data_dir.resolve()}, "
        f"API on http://{settings.host}:{settings.port} (docs at /docs)",
        err=True,
    )
    _serve(app, settings)


def serve(
    service: Annotated[str, typer.Argument(help="A service's name, or gateway")],
    host: Annotated[str | None, typer.Option(help="Listen address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8000]")] = None,
) -> None:
    """Run one service (its consumers, workers and HTTP API), or the gateway, in this process.
    Configured by AGORA_* variables; SIGTERM drains it."""
    from agora.runtime.runtime import SERVICE_NAMES, Runtime

    settings = settings_from(host=host, port=port)
    configure_logging(settings)
    if service == "gateway":
        from agora.runtime.runtime import build_gateway

        _serve(build_gateway(settings), settings)
        return
    if service not in SERVICE_NAMES:
        fail(f"no service {service!r}; services: {', '.join(SERVICE_NAMES)}, gateway", status=2)
    if service == "catalog":
        _check_seed(settings)
    if not (settings.kafka_bootstrap and settings.database_url_template):
        _check_data_dir(settings)
    _serve(_built(lambda: Runtime(settings, [service]).app()), settings)


def _check_seed(settings: Settings) -> None:
    from agora.services.catalog.bootstrap import InvalidSeedFile, load_seed

    try:
        load_seed(settings.seed_file)
    except InvalidSeedFile as error:
        fail(str(error))


def _check_data_dir(settings: Settings) -> None:
    """The embedded default's folder must be a folder this process may take: a second process
    on it is refused here, before anything is announced, rather than by the server's start-up."""
    from agora.runtime.runtime import DataDirInUse

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        DataDirInUse.check(settings.data_dir)
    except DataDirInUse as error:
        fail(str(error))
    except FileExistsError:
        fail(f"{settings.data_dir} is a file, not a folder (--data-dir)")
    except OSError as error:
        fail(f"cannot use {settings.data_dir} as the data folder (--data-dir): {error.strerror}")


def _built(build: Callable[[], FastAPI]) -> FastAPI:
    from agora.services.catalog.bootstrap import InvalidSeedFile

    try:
        return build()
    except InvalidSeedFile as error:  # changed since it was checked
        fail(str(error))


def migrate() -> None:
    """Create each service's database if missing (PostgreSQL) and apply its migrations."""
    from agora.runtime.supervisor import migrate_all

    settings = settings_from()
    if not settings.uses_servers:
        _check_data_dir(settings)
    with reported_as("migrate"):
        asyncio.run(migrate_all(settings))


def nginx_config(
    entry: Annotated[
        list[str],
        typer.Option(help="The gateway process's URL, http://HOST:PORT (repeat for replicas)"),
    ],
    listen: Annotated[str, typer.Option(help="nginx's listen address: PORT or HOST:PORT")] = "8000",
) -> None:
    """Print nginx's configuration for a deployment of your own: each service's paths to the
    replicas AGORA_UPSTREAMS names, the rest to the gateway (what `agora up` on servers writes
    for itself; see docs/deploy.md)."""
    from agora.gateway.nginx import nginx_config as render
    from agora.gateway.nginx import settings_limits
    from agora.services.registry import SERVICES
    from agora.services.spec import PathTable

    settings = settings_from()
    try:
        config = render(
            listen=listen,
            upstreams=settings.upstreams,
            entry=entry,
            paths=PathTable(SERVICES),
            limits=settings_limits(settings),
        )
    except ValueError as error:
        fail(f"{error} (AGORA_UPSTREAMS names each service's replicas)", status=2)
    made_by = " ".join(
        ["agora nginx-config", f"--listen {listen}", *(f"--entry {e}" for e in entry)]
    )
    typer.echo(
        f"# Made by `{made_by}` from AGORA_UPSTREAMS and the service registry.\n" + config, nl=False
    )
