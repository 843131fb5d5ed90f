"""The `agora` command: the root app and one module per command group."""

from __future__ import annotations

import typer

from agora import __version__
from agora.cli import run
from agora.cli.bench import bench_app
from agora.cli.check import check
from agora.cli.dlt import dlt_app
from agora.cli.events import events_app
from agora.cli.identity import keys_app, users_app
from agora.cli.ledger import ledger_app
from agora.cli.outbox import outbox_app
from agora.infra.cli import infra_app

__all__ = ["app", "main"]

app = typer.Typer(
    help="Agora: an event-driven marketplace and ticketing backend.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print Agora's version."""
    typer.echo(__version__)


app.command()(run.up)
app.command()(run.serve)
app.command()(run.migrate)
app.command(name="nginx-config")(run.nginx_config)
app.command()(check)
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlt_app, name="dlt")
app.add_typer(events_app, name="events")
app.add_typer(infra_app, name="infra")
app.add_typer(bench_app, name="bench")
app.add_typer(ledger_app, name="ledger")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")


def main() -> None:
    app()
