"""`agora outbox`: the services' transactional outboxes."""

from __future__ import annotations

import asyncio

import typer

from agora.cli.settings import DataDir, reported_as, require_data, settings_from
from agora.settings import Settings

outbox_app = typer.Typer(help="The services' transactional outboxes.", no_args_is_help=True)


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


@outbox_app.command("status")
def outbox_status(data_dir: DataDir = None) -> None:
    """Events written by each service and not yet published."""
    settings = settings_from(data_dir=data_dir)
    require_data(settings)
    with reported_as("outbox status"):
        rows = asyncio.run(_outbox_status(settings))
    typer.echo(f"{'service':<16}{'unpublished':>12}")
    for name, backlog in rows:
        typer.echo(f"{name:<16}{backlog:>12}")
