"""Inventory's background work: the hold sweeper, which announces each hold that has run out
and passes on each waiting-list offer that has."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select, update

from agora.contracts.inventory import HoldExpired
from agora.messaging import Database, UnitOfWork, utcnow
from agora.services.inventory.repository import InventoryUnitOfWork
from agora.services.inventory.store import HELD, holds, next_expiry, place_holds

__all__ = ["HoldSweeper", "announce_expired_holds"]


class HoldSweeper:
    """A durable sweep over the holds' indexed expiry (never a cache key's expiry: keyspace
    notifications are lost when nobody listens)."""

    def __init__(
        self,
        db: Database,
        unit_of_work: Callable[[], InventoryUnitOfWork],
        pass_on_offers: Callable[[InventoryUnitOfWork], Awaitable[bool]],
    ) -> None:
        self._db = db
        self._unit_of_work = unit_of_work
        self._pass_on_offers = pass_on_offers

    async def step(self) -> float | None:
        """Announce expired holds; returns seconds until the next hold expires."""
        async with self._db.read() as conn:
            upcoming = await next_expiry(conn)
        if upcoming is None:
            return None
        if upcoming > utcnow():
            return (upcoming - utcnow()).total_seconds()
        async with self._unit_of_work() as uow:
            await announce_expired_holds(uow)
        async with self._unit_of_work() as uow:
            await self._pass_on_offers(uow)
        return 0


async def announce_expired_holds(uow: UnitOfWork, limit: int = 500) -> list[str]:
    """Publish HoldExpired once for each order whose hold (of stock, of places, or both) has
    run out; returns those orders."""
    now = utcnow()
    order_ids: dict[str, None] = {}
    for table in (holds, place_holds):
        result = await uow.conn.execute(
            select(table.c.order_id)
            .where(table.c.state == HELD, ~table.c.expiry_announced, table.c.expires_at <= now)
            .limit(limit)
            .with_for_update(skip_locked=True)  # replicas' sweepers share the work
        )
        order_ids.update(dict.fromkeys(result.scalars()))
    if order_ids:
        for table in (holds, place_holds):
            await uow.conn.execute(
                update(table).where(table.c.order_id.in_(order_ids)).values(expiry_announced=True)
            )
        for order_id in order_ids:
            uow.emit(HoldExpired(order_id=order_id))
    return list(order_ids)
