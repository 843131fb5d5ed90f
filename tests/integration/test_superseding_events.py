"""An event that states the latest value of its key (`Event.supersedes`, inventory's
AvailabilityChanged) is written to the outbox once per key and transaction: the last value, in
the place of the last one emitted. Others are all written, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import MetaData, Table, select

from agora.contracts.inventory import AvailabilityChanged, HoldExpired
from agora.messaging import Database, Envelope, UnitOfWork, add_outbox_table


@pytest_asyncio.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[tuple[Database, Table]]:
    schema = MetaData()
    table = add_outbox_table(schema)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}", schema)
    await db.create_tables()
    try:
        yield db, table
    finally:
        await db.dispose()


async def written(db: Database, table: Table) -> list[tuple[str, dict[str, object]]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(table.c.value).order_by(table.c.id))).all()
    envelopes = [Envelope.from_bytes(bytes(row.value)) for row in rows]
    return [(e.type, e.payload) for e in envelopes]


async def test_a_later_value_of_a_key_replaces_the_earlier_one_in_a_transaction(
    outbox: tuple[Database, Table],
) -> None:
    db, table = outbox
    async with UnitOfWork(db, table, source="inventory") as uow:
        uow.emit(AvailabilityChanged(product_id="lamp", available=9))
        uow.emit(HoldExpired(order_id="o1"))
        uow.emit(AvailabilityChanged(product_id="rug", available=4))
        uow.emit(AvailabilityChanged(product_id="lamp", available=8))
        uow.emit(HoldExpired(order_id="o2"))
        uow.emit(AvailabilityChanged(product_id="lamp", available=7))
    async with UnitOfWork(db, table, source="inventory") as uow:
        uow.emit(AvailabilityChanged(product_id="lamp", available=6))

    assert await written(db, table) == [
        ("HoldExpired", {"order_id": "o1"}),
        ("AvailabilityChanged", {"product_id": "rug", "available": 4}),
        ("HoldExpired", {"order_id": "o2"}),
        ("AvailabilityChanged", {"product_id": "lamp", "available": 7}),
        ("AvailabilityChanged", {"product_id": "lamp", "available": 6}),  # its own transaction
    ]
