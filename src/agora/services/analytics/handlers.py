"""Analytics: the audit trail of every saga, from every topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Row

from agora.auth import Principal, may_read
from agora.messaging import Database, Event, Handler
from agora.problems import NotFound
from agora.services.analytics.repository import AnalyticsUnitOfWork
from agora.services.analytics.store import saga_timeline


async def record_event(event: Event, uow: AnalyticsUnitOfWork) -> None:
    """Whatever the event, its envelope joins its saga's timeline."""
    assert uow.cause is not None
    await uow.saga_events.record(uow.cause)


def handlers_for(
    events: Iterable[type[Event]],
) -> Mapping[type[Event], Handler[AnalyticsUnitOfWork]]:
    return dict.fromkeys(events, record_event)


class OrderNotSeen(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__("order-not-found", "Order not found", f"no events of order {order_id}")


async def order_timeline(db: Database, caller: Principal, order_id: str) -> list[Row[Any]]:
    """The order's saga, for its buyer and admins; `OrderNotSeen` for anyone else."""
    async with db.read() as conn:
        rows = await saga_timeline(conn, order_id)
    if not rows or not may_read(caller, *{row.customer_id for row in rows}):
        raise OrderNotSeen(order_id)
    return rows
