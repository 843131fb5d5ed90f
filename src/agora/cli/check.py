"""`agora check`: the invariants across the services' databases and the event log.

Each service judges its own data (its `audit` module, on its own database); the checks across
services join the facts those modules offer: orders against payments, orders against
inventory. The platform's `messaging.audit` judges the outboxes and the consumer groups.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from agora.audit import SHOWN_IDS, Verdict, verdict
from agora.cli.settings import DataDir, fail, reported_as, require_data, settings_from
from agora.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from agora.messaging import Database
    from agora.services.inventory.audit import HoldStates
    from agora.services.orders.audit import FinalOrder
    from agora.services.payments.audit import OrderPayment

AUDITED = ("inventory", "ticketing", "orders", "payments")
"""The services whose own invariants are checked (every service's outbox is)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bounds:
    """How far a running system may be behind before it counts as a violation."""

    outbox: dt.timedelta
    """An outbox row unpublished for longer is overdue."""
    lag: int
    """Records a consumer group may have left to read on one topic."""
    hold_grace: dt.timedelta
    """An order not final this long after its hold expired (or, not reserved, after it was
    placed) is stuck."""
    settle: dt.timedelta
    """Orders final for less are left out of the checks across services: the other services'
    consumers may not have followed yet."""


async def run_check(settings: Settings, bounds: Bounds) -> list[Verdict]:
    from agora.messaging import utcnow
    from agora.services.inventory import audit as inventory
    from agora.services.orders import audit as orders
    from agora.services.payments import audit as payments
    from agora.services.ticketing import audit as ticketing

    now = utcnow()
    async with AsyncExitStack() as stack:
        conns = {
            name: await stack.enter_async_context(snapshot(settings, name)) for name in AUDITED
        }
        verdicts = [
            *await inventory.invariants(conns["inventory"]),
            *await ticketing.invariants(conns["ticketing"]),
            *await orders.invariants(conns["orders"], now, bounds.hold_grace),
            *await payments.invariants(conns["payments"]),
        ]
        final = await orders.final_orders(conns["orders"], now - bounds.settle)
        paid = await payments.payments_by_order(conns["payments"])
        held = await inventory.hold_states_by_order(conns["inventory"])
    verdicts += orders_against_payments(final, paid)
    verdicts.append(orders_against_inventory(final, held))
    verdicts.append(await _outboxes_published(settings, now - bounds.outbox, bounds.outbox))
    verdicts.append(await _consumers_caught_up(settings, bounds.lag))
    return verdicts


def orders_against_payments(
    final: Sequence[FinalOrder], paid: dict[str, OrderPayment]
) -> list[Verdict]:
    """A confirmed order's payment succeeded (that it was captured once is payments' own
    invariant); an order that ended otherwise keeps no charge (never taken, or refunded); what
    was asked for is the order's total."""
    from agora.services.orders.domain import OrderStatus
    from agora.services.payments.store import SUCCEEDED

    scope = "orders+payments"
    confirmed = [o for o in final if o.status is OrderStatus.CONFIRMED]
    ended = [o for o in final if o.status is not OrderStatus.CONFIRMED]
    with_payment = [o for o in final if o.id in paid]
    return [
        verdict(
            "confirmed orders paid",
            scope,
            checked=len(confirmed),
            noun="confirmed orders",
            offenders=[
                o.id for o in confirmed if (p := paid.get(o.id)) is None or p.state != SUCCEEDED
            ],
            why="without a payment that succeeded",
        ),
        verdict(
            "ended orders not charged",
            scope,
            checked=len(ended),
            noun="cancelled or expired orders",
            offenders=[
                o.id
                for o in ended
                if (p := paid.get(o.id)) is not None and p.captures > 0 and not p.refunded
            ],
            why="charged and not refunded",
        ),
        verdict(
            "payments match totals",
            scope,
            checked=len(with_payment),
            noun="orders with a payment",
            offenders=[
                o.id
                for o in with_payment
                if (paid[o.id].amount, paid[o.id].currency) != (o.total, o.currency)
            ],
            why="charging another amount than the order's total",
        ),
    ]


def orders_against_inventory(final: Sequence[FinalOrder], held: HoldStates) -> Verdict:
    """A confirmed order's stock and places are sold (or given back, a cancelled ticket's);
    an order that ended otherwise holds and bought nothing."""
    from agora.services.inventory.store import HELD, SOLD
    from agora.services.orders.domain import OrderStatus

    def follows(order: FinalOrder) -> bool:
        states = held.get(order.id, set())
        if order.status is OrderStatus.CONFIRMED:
            return bool(states) and HELD not in states
        return not states & {HELD, SOLD}

    return verdict(
        "holds follow orders",
        "orders+inventory",
        checked=len(final),
        noun="final orders",
        offenders=[order.id for order in final if not follows(order)],
        why="whose holds are not sold (confirmed) or released (ended)",
    )


async def _outboxes_published(
    settings: Settings, written_before: dt.datetime, bound: dt.timedelta
) -> Verdict:
    from sqlalchemy import MetaData

    from agora.messaging import add_outbox_table
    from agora.messaging.audit import overdue_outbox
    from agora.services.registry import SERVICE_NAMES

    table = add_outbox_table(MetaData())
    overdue_rows, oldest = 0, []
    for name in SERVICE_NAMES:
        db = _database(settings, name)
        try:
            async with db.read() as conn:
                overdue = await overdue_outbox(conn, table, written_before, shown=SHOWN_IDS)
        finally:
            await db.dispose()
        overdue_rows += overdue.count
        oldest += [f"{name}:{event_id}" for event_id in overdue.oldest]
    name, scope = "outbox published", "every service"
    if not overdue_rows:
        return Verdict(name, scope, f"{len(SERVICE_NAMES)} outboxes")
    shown = ", ".join(oldest[:SHOWN_IDS]) + (", …" if overdue_rows > SHOWN_IDS else "")
    detail = f"{overdue_rows} events unpublished after {bound.total_seconds():g} s: {shown}"
    return Verdict(name, scope, detail, tuple(oldest))


async def _consumers_caught_up(settings: Settings, bound: int) -> Verdict:
    from agora import contracts
    from agora.messaging.audit import consumer_lag
    from agora.runtime.runtime import build_log
    from agora.services.registry import SERVICES

    groups = [group for spec in SERVICES for group in spec.consumer_groups]
    log = build_log(settings)
    try:
        await log.open()
        lags = await consumer_lag(log, groups, contracts.TOPICS)
    finally:
        await log.close()
    return verdict(
        "consumers caught up",
        "Kafka" if settings.kafka_bootstrap else "embedded log",
        checked=len(lags),
        noun="group topics",
        offenders=[f"{lag.group}@{lag.topic}={lag.records}" for lag in lags if lag.records > bound],
        why=f"more than {bound} records behind",
    )


def _database(settings: Settings, service: str) -> Database:
    """`service`'s database, never created here: on the embedded default a missing file ends
    the command."""
    from sqlalchemy import MetaData

    from agora.messaging import Database

    if not settings.uses_servers and not (settings.data_dir / f"{service}.db").exists():
        fail(f"no database of {service} in {settings.data_dir.resolve()}")
    return Database(settings.database_url(service), MetaData(), timeouts=settings.database_timeouts)


@asynccontextmanager
async def snapshot(settings: Settings, service: str) -> AsyncIterator[AsyncConnection]:
    db = _database(settings, service)
    try:
        async with db.snapshot() as conn:
            yield conn
    finally:
        await db.dispose()


def as_table(verdicts: Sequence[Verdict]) -> str:
    """One row per verdict under a header, columns aligned (the detail last, as long as it is)."""
    header = ("invariant", "scope", "status", "detail")
    rows = [header] + [(v.name, v.scope, "OK" if v.ok else "VIOLATED", v.detail) for v in verdicts]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )


def check(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for machines")] = False,
    outbox_seconds: Annotated[
        float, typer.Option(min=0, help="An outbox row unpublished for longer is overdue")
    ] = 60.0,
    lag_records: Annotated[
        int, typer.Option(min=0, help="Records a consumer group may be behind on a topic")
    ] = 1_000,
    hold_grace_seconds: Annotated[
        float,
        typer.Option(min=0, help="How long past its hold expiry an order may still not be final"),
    ] = 60.0,
    settle_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="Orders final for less are left out of the checks across services (their "
            "events may still be on their way)",
        ),
    ] = 60.0,
) -> None:
    """Verify the invariants across the services' databases and the event log: exit status 1
    if any is violated."""
    settings = settings_from(data_dir=data_dir)
    require_data(settings)
    bounds = Bounds(
        outbox=dt.timedelta(seconds=outbox_seconds),
        lag=lag_records,
        hold_grace=dt.timedelta(seconds=hold_grace_seconds),
        settle=dt.timedelta(seconds=settle_seconds),
    )
    # aiokafka logs each failed connection as an error of its own; the failure that matters is
    # the command's one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with reported_as("check"):
        verdicts = asyncio.run(run_check(settings, bounds))
    ok = all(v.ok for v in verdicts)
    if as_json:
        typer.echo(
            orjson.dumps(
                {
                    "ok": ok,
                    "invariants": [v.as_json() for v in verdicts],
                }
            )
        )
    else:
        typer.echo(as_table(verdicts))
    if not ok:
        raise typer.Exit(1)
