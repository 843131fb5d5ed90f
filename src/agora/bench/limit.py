"""The machine's limit: how many saga-step transactions PostgreSQL commits here, measured with
pgbench, and the sagas/s that caps the platform at.

The transaction is the shape of one consumer delivery on servers: claim the event in an inbox
(unique key), take one unit of stock with a conditional update over a few thousand rows, write
an outbox row and notify the relay (as `write_outbox` does), commit. pgbench runs it from C with
prepared statements, so the figure is what the database and the disk give, without Python.

A saga costs more than one such transaction; `SAGA_TRANSACTIONS` counts them from the code.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from agora.runtime.supervisor import ensure_database

# Write transactions one saga (an order paid with a card that succeeds) commits on PostgreSQL
# when nothing is batched (one buyer). Under load deliveries, relay steps and payment claims
# share transactions, so this is the count at its highest.
SAGA_TRANSACTIONS: dict[str, int] = {
    # POST /api/orders: the idempotency key is claimed in a transaction of its own, then the
    # order and its OrderPlaced are written (orders.handlers.place_order).
    "http": 2,
    # One per (event, consumer group that handles it); analytics handles every event:
    #   OrderPlaced         inventory, analytics
    #   StockReserved       orders, analytics
    #   AvailabilityChanged catalog, orders (the door's sold-out check), analytics
    #   PaymentRequested    payments, analytics
    #   PaymentSucceeded    orders, analytics
    #   OrderConfirmed      inventory, notifications, catalog (who bought what), analytics
    "deliveries": 15,
    # The payment processor claims the due payment under a lease, then records the charge and
    # emits PaymentSucceeded (payments.workers.PaymentProcessor).
    "payments": 2,
    # One relay step (advisory lock, read, mark sent) per outbox commit: orders three times
    # (OrderPlaced, PaymentRequested, OrderConfirmed), inventory and payments once each.
    "relay": 5,
}

SCRIPT = """\
\\set p random(1, {products})
BEGIN;
INSERT INTO inbox (consumer_group, event_id, received_at)
    VALUES ('limit', gen_random_uuid()::text, now());
UPDATE stock SET available = available - 1 WHERE product_id = :p AND available >= 1;
INSERT INTO outbox (event_id, topic, key, value, created_at)
    VALUES (gen_random_uuid()::text, 'inventory', :p, '\\x7b7d', now());
SELECT pg_notify('agora_outbox_limit', '');
COMMIT;
"""

SCHEMA = """
CREATE TABLE inbox (
    consumer_group text NOT NULL,
    event_id varchar(36) NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
CREATE TABLE stock (
    product_id text PRIMARY KEY,
    available integer NOT NULL,
    reserved integer NOT NULL DEFAULT 0,
    sold integer NOT NULL DEFAULT 0
);
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id varchar(36) NOT NULL UNIQUE,
    topic text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX ix_outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
INSERT INTO stock (product_id, available)
    SELECT g::text, 100000000 FROM generate_series(1, $1::integer) AS g;
"""


def saga_transactions() -> int:
    return sum(SAGA_TRANSACTIONS.values())


async def _prepare(url: str, products: int) -> None:
    import asyncpg

    await ensure_database(url)
    target = make_url(url)
    connection = await asyncpg.connect(
        host=target.host, port=target.port, user=target.username, database=target.database
    )
    try:
        statements = [s for s in SCHEMA.split(";") if s.strip()]
        for statement in statements[:-1]:
            await connection.execute(statement)
        await connection.execute(statements[-1], products)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _drop(url: str) -> None:
    import asyncpg

    target = make_url(url)
    connection = await asyncpg.connect(
        host=target.host, port=target.port, user=target.username, database="postgres"
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{target.database}"')
    finally:
        await connection.close()


def parse_pgbench(output: str) -> dict[str, float]:
    """TPS, mean latency and transactions from pgbench's summary."""
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", output, re.M)
    latency = re.search(r"^latency average = ([\d.]+) ms", output, re.M)
    done = re.search(r"^number of transactions actually processed: (\d+)", output, re.M)
    if tps is None or done is None:
        raise RuntimeError(f"pgbench printed no summary:\n{output}")
    return {
        "tps": float(tps.group(1)),
        "latency_ms": float(latency.group(1)) if latency else 0.0,
        "transactions": float(done.group(1)),
    }


def _pgbench(url: str, script: Path, duration: int, clients: int, jobs: int) -> str:
    pgbench = shutil.which("pgbench") or "/usr/bin/pgbench"
    target = make_url(url)
    command = [
        pgbench,
        "--no-vacuum",
        "--protocol=prepared",
        f"--file={script}",
        f"--time={duration}",
        f"--client={clients}",
        f"--jobs={jobs}",
        "--progress=1",
        f"--host={target.host}",
        f"--port={target.port}",
        f"--username={target.username}",
        str(target.database),
    ]
    # pgbench prints its progress on stderr, which goes straight to ours; the summary on stdout.
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


def bench_limit(
    *, duration: int, clients: int, jobs: int, products: int, measured: float | None
) -> dict[str, object]:
    from agora.infra import ensure_up

    env = ensure_up().isolated_env("limit")
    url = env["AGORA_DATABASE_URL_TEMPLATE"].replace("{service}", "bench")
    asyncio.run(_prepare(url, products))
    print(f"  {products} stock rows in {make_url(url).database}; pgbench", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "saga_step.sql"
            script.write_text(SCRIPT.format(products=products))
            figures = parse_pgbench(_pgbench(url, script, duration, clients, jobs))
    finally:
        asyncio.run(_drop(url))
    per_saga = saga_transactions()
    ceiling = figures["tps"] / per_saga
    result: dict[str, object] = {
        "scenario": "limit",
        "backend": "servers",
        "duration_s": duration,
        "clients": clients,
        "jobs": jobs,
        "products": products,
        "transactions": int(figures["transactions"]),
        "tps": round(figures["tps"], 1),
        "latency_ms": round(figures["latency_ms"], 2),
        "transactions_per_saga": per_saga,
        "saga_transactions": SAGA_TRANSACTIONS,
        "sagas_per_s_ceiling": round(ceiling, 1),
    }
    if measured is not None:
        result["measured_sagas_per_s"] = measured
        result["share"] = round(measured / ceiling, 4)
    return result
