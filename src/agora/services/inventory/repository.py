"""How inventory's handlers change its rows: the repository of one unit of work, keeping the
locking rule (`locking`). Tests hold handlers to it with an in-memory twin."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork, utcnow
from agora.services.inventory.locking import lock_stock, reserve_lines
from agora.services.inventory.places import PlaceRepository
from agora.services.inventory.store import HELD, holds, place_changes, stock
from agora.services.inventory.waitlist import WaitlistRepository

__all__ = ["NOTIFY_IDS", "PLACE_CHANGES", "InventoryUnitOfWork", "StockRepository"]

PLACE_CHANGES = "agora_places_changed"
"""The NOTIFY channel naming sessions whose places changed (comma-separated ids)."""
NOTIFY_IDS = 100
"""Session ids per notification, to stay well under PostgreSQL's 8,000-byte payload."""


class StockRepository:
    """Inventory's rows as its handlers change them, in the unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock(
        self, product_ids: Iterable[str], ending_orders: Sequence[str], *, timeout: float
    ) -> None:
        """Lock the stock of `product_ids` and of the products the holds of `ending_orders`
        hold, all at once and in order, waiting at most `timeout` seconds (see locking)."""
        products = set(product_ids)
        if ending_orders:
            rows = await self._conn.execute(
                select(holds.c.product_id).where(holds.c.order_id.in_(ending_orders)).distinct()
            )
            products.update(rows.scalars())
        await lock_stock(self._conn, products, timeout=timeout)

    async def add(self, product_id: str, seller_id: str | None, units: int) -> bool:
        """Stock a new product with `units` available; False (and nothing changed) if it has
        stock already."""
        if await self._conn.scalar(STOCK_EXISTS, {"product": product_id}):
            return False
        await self._conn.execute(
            insert(stock).values(
                product_id=product_id,
                available=units,
                reserved=0,
                sold=0,
                stocked=units,
                seller_id=seller_id,
            )
        )
        return True

    async def reserve(self, lines: Sequence[tuple[str, int]]) -> dict[str, int]:
        """Move every line from available to reserved, or nothing (`Shortage`); returns each
        product's available count after."""
        return await reserve_lines(self._conn, lines)

    async def hold(
        self, order_id: str, lines: Sequence[tuple[str, int]], expires_at: dt.datetime
    ) -> None:
        await self._conn.execute(
            insert(holds),
            [
                {
                    "order_id": order_id,
                    "product_id": product_id,
                    "quantity": quantity,
                    "state": HELD,
                    "expires_at": expires_at,
                    "expiry_announced": False,
                }
                for product_id, quantity in lines
            ],
        )

    async def end_holds(self, order_id: str, state: str) -> list[tuple[str, int]]:
        """Move the order's held lines to `state`; returns the lines that were held."""
        ending = {"order": order_id, "held": HELD, "new_state": state}
        result = await self._conn.execute(END_HOLDS, ending)
        return [(row.product_id, row.quantity) for row in result]

    async def sell(self, product_id: str, quantity: int) -> None:
        """Units reserved by a hold become sold."""
        await self._conn.execute(SELL, {"product": product_id, "quantity": quantity})

    async def put_back(self, product_id: str, quantity: int) -> int:
        """Units reserved by a hold are available again; returns the available count."""
        result = await self._conn.execute(PUT_BACK, {"product": product_id, "quantity": quantity})
        return int(result.scalar_one())


class InventoryUnitOfWork(UnitOfWork):
    """A unit of work that names the sessions whose places it changes, so that the service can
    wake their seat maps' streams: in this process when it commits, and on PostgreSQL in every
    replica through NOTIFY (sent with the commit)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.changed_sessions: set[str] = set()
        self.place_changes: list[dict[str, Any]] = []
        """The change log rows of the transaction (those of a savepoint rolled back taken out
        again): written just before it commits, stamped with that time, and handed to this
        process's streams once committed."""
        self.before_commit(self._write_changes)
        self.before_commit(self._notify_changed)

    def _places_changed(self, session_id: str, rows: list[dict[str, Any]]) -> None:
        self.changed_sessions.add(session_id)
        self.place_changes.extend(rows)

    async def _write_changes(self, conn: AsyncConnection) -> None:
        if self.place_changes:
            at = utcnow()
            for row in self.place_changes:
                row["committed_at"] = at
            await conn.execute(insert(place_changes), self.place_changes)

    async def _notify_changed(self, _conn: AsyncConnection) -> None:
        ids = sorted(self.changed_sessions)
        for start in range(0, len(ids), NOTIFY_IDS):
            self.notify(PLACE_CHANGES, ",".join(ids[start : start + NOTIFY_IDS]))

    @property
    def stock(self) -> StockRepository:
        return StockRepository(self.conn)

    @property
    def places(self) -> PlaceRepository:
        return PlaceRepository(self.conn, self._places_changed)

    @property
    def waitlist(self) -> WaitlistRepository:
        return WaitlistRepository(self.conn)

    @contextlib.asynccontextmanager
    async def all_or_nothing(self) -> AsyncIterator[None]:
        """A savepoint: an error inside undoes what the block changed (and only that), so one
        order's refusal leaves the rest of the consumer's batch standing."""
        kept = len(self.place_changes)
        try:
            async with self.conn.begin_nested():
                yield
        except BaseException:
            del self.place_changes[kept:]
            raise


STOCK_EXISTS = (
    select(func.count()).select_from(stock).where(stock.c.product_id == bindparam("product"))
)
SELL = (
    update(stock)
    .where(stock.c.product_id == bindparam("product"))
    .values(
        reserved=stock.c.reserved - bindparam("quantity"),
        sold=stock.c.sold + bindparam("quantity"),
    )
)
PUT_BACK = (
    update(stock)
    .where(stock.c.product_id == bindparam("product"))
    .values(
        available=stock.c.available + bindparam("quantity"),
        reserved=stock.c.reserved - bindparam("quantity"),
    )
    .returning(stock.c.available)
)
END_HOLDS = (
    update(holds)
    .where(holds.c.order_id == bindparam("order"), holds.c.state == bindparam("held"))
    .values(state=bindparam("new_state"))
    .returning(holds.c.product_id, holds.c.quantity)
)
