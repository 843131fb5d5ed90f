"""`agora ledger`: payments' double-entry ledger."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

from agora.audit import Verdict
from agora.cli.check import as_table, snapshot
from agora.cli.settings import DataDir, reported_as, require_data, settings_from
from agora.settings import Settings

ledger_app = typer.Typer(help="Payments' double-entry ledger.", no_args_is_help=True)


async def _verdicts(settings: Settings) -> list[Verdict]:
    from agora.services.payments.audit import ledger_invariants

    async with snapshot(settings, "payments") as conn:
        return await ledger_invariants(conn)


@ledger_app.command("check")
def ledger_check(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for machines")] = False,
) -> None:
    """Reconcile the ledger: every posting balances, every charged payment has exactly one
    capture, every provider refund and payout its postings, shares add up to their payment and
    balances to their entries. Exit status 1 if any does not hold."""
    settings = settings_from(data_dir=data_dir)
    require_data(settings)
    with reported_as("ledger check"):
        verdicts = asyncio.run(_verdicts(settings))
    ok = all(v.ok for v in verdicts)
    if as_json:
        typer.echo(orjson.dumps({"ok": ok, "invariants": [v.as_json() for v in verdicts]}))
    else:
        typer.echo(as_table(verdicts))
    if not ok:
        raise typer.Exit(1)
