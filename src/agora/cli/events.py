"""`agora events`: the integration events (the services' contract)."""

from __future__ import annotations

import orjson
import typer

from agora import contracts

events_app = typer.Typer(help="The integration events (the services' contract).")


@events_app.command("schemas")
def event_schemas() -> None:
    """Print the JSON Schema of every integration event, by type."""
    typer.echo(orjson.dumps(contracts.registry().json_schemas(), option=orjson.OPT_INDENT_2))
