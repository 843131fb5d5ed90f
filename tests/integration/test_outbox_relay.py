"""The outbox relay on SQLite and on PostgreSQL: every row goes out in id order and is marked
sent only once the log has it; a failed publish leaves its rows to go out again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, Table

from agora.contracts.orders import OrderConfirmed
from agora.infra import InfraSettings
from agora.messaging import (
    Database,
    Envelope,
    MessagingMetrics,
    OutboxRelay,
    Record,
    add_outbox_table,
    new_id,
    outbox_backlog,
    sqlite_url,
    write_outbox,
)
from agora.messaging.backends.embedded import EmbeddedLog
from agora.runtime.supervisor import ensure_database

BATCH = 3
BATCHES_PER_STEP = 2


class RecordingLog:
    """The embedded log, noting the keys each publish carried; `fail_on` makes the publish of
    that number (1-based) raise instead of appending (a broker that refuses the batch)."""

    def __init__(self, log: EmbeddedLog) -> None:
        self.log = log
        self.published: list[list[str]] = []
        self.fail_on: int | None = None
        self.calls = 0

    async def publish(self, records: Sequence[Record]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("the broker refused the batch")
        await self.log.publish(records)
        self.published.append([record.key for record in records])


class Outbox:
    def __init__(self, db: Database, table: Table, relay: OutboxRelay, log: RecordingLog) -> None:
        self.db, self.table, self.relay, self.log = db, table, relay, log

    async def write(self, count: int) -> list[str]:
        envelopes = [
            Envelope.wrap(
                OrderConfirmed(order_id=new_id(), customer_id="c", total="1.00", currency="EUR"),
                source="relaytest",
            )
            for _ in range(count)
        ]
        async with self.db.write() as conn:
            await write_outbox(conn, self.table, [("orders", e) for e in envelopes])
        return [envelope.key for envelope in envelopes]

    async def backlog(self) -> int:
        async with self.db.read() as conn:
            return await outbox_backlog(conn, self.table)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    if request.param == "postgresql":
        servers: InfraSettings = request.getfixturevalue("servers")
        url = servers.isolated_env("relay")["AGORA_DATABASE_URL_TEMPLATE"].replace(
            "{service}", "relaytest"
        )
        await ensure_database(url)
    else:
        url = sqlite_url(tmp_path / "relaytest.db")
    metadata = MetaData()
    table = add_outbox_table(metadata)
    db = Database(url, metadata)
    embedded = EmbeddedLog(tmp_path / "bus.db")
    await embedded.open()
    try:
        await db.create_tables()
        await embedded.create_topics(["orders"], 1)
        log = RecordingLog(embedded)
        relay = OutboxRelay(
            "relaytest",
            db,
            table,
            log,  # type: ignore[arg-type]  # publishes through the embedded log
            MessagingMetrics(CollectorRegistry()),
            batch_size=BATCH,
            batches_per_step=BATCHES_PER_STEP,
        )
        yield Outbox(db, table, relay, log)
    finally:
        await db.dispose()
        await embedded.close()


async def test_every_row_goes_out_once_in_id_order(outbox: Outbox) -> None:
    keys = await outbox.write(10)

    steps = []
    while (result := await outbox.relay.step()) == 0:
        steps.append(result)
        assert len(steps) < 10, "the relay never drained the outbox"

    assert [key for batch in outbox.log.published for key in batch] == keys
    assert all(len(batch) <= BATCH for batch in outbox.log.published)
    assert await outbox.backlog() == 0
    assert await outbox.relay.step() is None  # nothing left, nothing sent
    assert len(outbox.log.published) == 4


async def test_a_failed_publish_leaves_its_rows_to_go_out_again(outbox: Outbox) -> None:
    keys = await outbox.write(7)
    outbox.log.fail_on = 2  # the second batch (on PostgreSQL, in the step that sent the first)

    failures, before, backlog = 0, 0, 0
    for _ in range(10):
        try:
            if await outbox.relay.step() is None:
                break
        except ConnectionError:
            failures += 1
            before = sum(len(batch) for batch in outbox.log.published)
            backlog = await outbox.backlog()

    sent = [key for batch in outbox.log.published for key in batch]
    assert failures == 1
    # PostgreSQL marks a step's batches in one transaction, rolled back whole; SQLite marks
    # each batch once it is out
    assert backlog == (len(keys) - BATCH if outbox.db.is_sqlite else len(keys))
    assert sent[before:] == keys[len(keys) - backlog :]  # what was not marked went out again
    assert set(sent) == set(keys)
    assert await outbox.backlog() == 0
