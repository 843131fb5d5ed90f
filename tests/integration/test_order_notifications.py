"""On PostgreSQL every replica of orders hears which orders changed: a unit of work that writes
orders sends their ids with NOTIFY in its transaction, so listeners (any process) hear them
once it commits, and never when it rolls back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from sqlalchemy import MetaData, Table

from agora.infra import InfraSettings
from agora.messaging import Database, add_outbox_table
from agora.runtime.supervisor import ensure_database
from agora.services.orders import store
from agora.services.orders.domain import Line, Order
from agora.services.orders.repository import ORDER_CHANGES, OrdersUnitOfWork


class Replicas:
    """One orders database seen by two processes' pools: one writes, the other listens."""

    def __init__(self, writer: Database, outbox: Table, listener: Database) -> None:
        self.writer, self.outbox, self.listener = writer, outbox, listener
        self.heard: asyncio.Queue[str] = asyncio.Queue()

    def unit_of_work(self) -> OrdersUnitOfWork:
        return OrdersUnitOfWork(self.writer, self.outbox, source="orders")

    async def next_heard(self) -> str:
        async with asyncio.timeout(10):
            return await self.heard.get()


@pytest_asyncio.fixture
async def replicas(servers: InfraSettings) -> AsyncIterator[Replicas]:
    url = servers.isolated_env("notify")["AGORA_DATABASE_URL_TEMPLATE"].replace(
        "{service}", "orders"
    )
    await ensure_database(url)
    schema = MetaData()
    for table in store.metadata.tables.values():
        table.to_metadata(schema)
    outbox = add_outbox_table(schema)
    writer, listener = Database(url, schema), Database(url, MetaData())
    try:
        await writer.create_tables()
        both = Replicas(writer, outbox, listener)
        await listener.listen(ORDER_CHANGES, both.heard.put_nowait, missed=lambda: None)
        yield both
    finally:
        await listener.dispose()
        await writer.dispose()


def an_order() -> Order:
    order = Order.place("buyer-1", [Line("lamp", 1, Decimal("30.00"))], "EUR")
    order.events.clear()
    return order


async def test_committed_orders_are_announced_to_other_connections(replicas: Replicas) -> None:
    first, second = an_order(), an_order()
    async with replicas.unit_of_work() as uow:
        await uow.orders.add(first)
        await uow.orders.add(second)

    heard = await replicas.next_heard()

    assert set(heard.split(",")) == {first.id, second.id}


async def test_a_rolled_back_unit_of_work_announces_nothing(replicas: Replicas) -> None:
    doomed, kept = an_order(), an_order()

    async def failing_handler() -> None:
        async with replicas.unit_of_work() as uow:
            await uow.orders.add(doomed)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await failing_handler()
    async with replicas.unit_of_work() as uow:
        await uow.orders.add(kept)

    # notifications arrive in commit order: the first heard is the committed one's
    assert await replicas.next_heard() == kept.id
    assert replicas.heard.empty()


async def test_a_large_batch_is_announced_in_several_notifications(replicas: Replicas) -> None:
    """PostgreSQL refuses a NOTIFY payload of 8,000 bytes: 300 ids go out in chunks."""
    orders = [an_order() for _ in range(300)]
    async with replicas.unit_of_work() as uow:
        for order in orders:
            await uow.orders.add(order)

    heard: set[str] = set()
    while len(heard) < len(orders):
        heard |= set((await replicas.next_heard()).split(","))

    assert heard == {order.id for order in orders}
