"""How inventory never oversells. The one rule:

    Stock is taken by a conditional update, `available = available - q WHERE available >= q`,
    one product at a time in product-id order, inside the transaction that records the hold.

The condition makes the check and the decrement one atomic step, so no reader can act on a stale
count; the fixed order means two orders touching the same products always lock them in the same
sequence (PostgreSQL row locks cannot deadlock, and SQLite has a single writer anyway). If any line
cannot be had, the lines already taken are put back in the same transaction: all or nothing.

A consumer applies a batch of events in one transaction, so the rule holds per batch:
`lock_stock` takes the rows of every product the batch touches, sorted, before any handler runs.

Nobody waits for a row lock for ever: `lock_stock` gives up after `LOCK_TIMEOUT` seconds (on
PostgreSQL; on SQLite the busy timeout bounds the wait for the write lock) and the transaction
fails with `LockTimeout`. Without a bound, one stalled holder of a hot product's row (a transaction
left open, a consumer stuck mid-batch) would queue every order for that product behind it, each
waiter keeping a pooled connection, until the pool ran dry and the whole service stood still.
Giving up rolls the waiter back, so it holds nothing while it waits to try again, and the consumer
runner retries a lock timeout as a transient fault: the event is applied later, never
dead-lettered. Five seconds is far beyond what the rule makes anyone wait (a batch holds its rows
for milliseconds, so even hundreds queued on one product clear in well under that), and short
enough that a stuck holder shows up in the logs and the retry count within seconds.

`reserve_stock(..., locking=False)` is the classic mistake (read the count in one transaction,
write the new count in another) kept only so that the race test can prove it sees oversells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import Database, LockTimeout, set_lock_timeout
from agora.services.inventory.store import stock

__all__ = [
    "LOCK_TIMEOUT",
    "LockTimeout",
    "Shortage",
    "lock_stock",
    "reserve_lines",
    "reserve_stock",
]

LOCK_TIMEOUT = 5.0
"""Seconds `lock_stock` waits for the rows by default (see the module's rule)."""


class Shortage(Exception):
    def __init__(self, product_id: str, requested: int) -> None:
        super().__init__(f"not enough stock of {product_id} for {requested}")
        self.product_id = product_id
        self.requested = requested


async def lock_stock(
    conn: AsyncConnection, product_ids: Iterable[str], *, timeout: float = LOCK_TIMEOUT
) -> None:
    """Lock the stock rows of `product_ids`, in product-id order (PostgreSQL row locks; on
    SQLite the transaction already holds the only write lock).

    Waits at most `timeout` seconds for them; then the transaction fails and `Database.write`
    raises `LockTimeout`. The timeout stays set for the rest of the transaction."""
    ids = sorted(set(product_ids))
    if ids and conn.dialect.name == "postgresql":
        await set_lock_timeout(conn, timeout)
        await conn.execute(
            select(stock.c.product_id)
            .where(stock.c.product_id.in_(ids))
            .order_by(stock.c.product_id)
            .with_for_update()
        )


# Prepared statements (docs/architecture.md).
TAKE = (
    update(stock)
    .where(stock.c.product_id == bindparam("product"), stock.c.available >= bindparam("quantity"))
    .values(
        available=stock.c.available - bindparam("quantity"),
        reserved=stock.c.reserved + bindparam("quantity"),
    )
    .returning(stock.c.available)
)


async def reserve_lines(conn: AsyncConnection, lines: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Take every line's quantity from `available` into `reserved`, or nothing.

    Returns the new available count per product; raises Shortage (having taken nothing).
    """
    taken: list[tuple[str, int]] = []
    available: dict[str, int] = {}
    for product_id, quantity in sorted(lines):
        result = await conn.execute(TAKE, {"product": product_id, "quantity": quantity})
        left = result.scalar_one_or_none()
        if left is None:
            await _put_back(conn, taken)
            raise Shortage(product_id, quantity)
        taken.append((product_id, quantity))
        available[product_id] = left
    return available


async def _put_back(conn: AsyncConnection, taken: Sequence[tuple[str, int]]) -> None:
    for product_id, quantity in taken:
        await conn.execute(
            update(stock)
            .where(stock.c.product_id == product_id)
            .values(available=stock.c.available + quantity, reserved=stock.c.reserved - quantity)
        )


async def reserve_stock(
    db: Database,
    lines: Sequence[tuple[str, int]],
    *,
    locking: bool = True,
    timeout: float = LOCK_TIMEOUT,
) -> dict[str, int]:
    """Reserve `lines` in a transaction of its own, as a consumer's batch does (see the
    module's rule); raises Shortage, or LockTimeout after `timeout` seconds."""
    if locking:
        async with db.write() as conn:
            await lock_stock(conn, (product_id for product_id, _ in lines), timeout=timeout)
            return await reserve_lines(conn, lines)
    # Test-only: check, then act, in two transactions. Other writers run in between.
    new_counts: dict[str, int] = {}
    async with db.read() as conn:
        for product_id, quantity in lines:
            count = await conn.scalar(
                select(stock.c.available).where(stock.c.product_id == product_id)
            )
            if count is None or count < quantity:
                raise Shortage(product_id, quantity)
            new_counts[product_id] = count - quantity
    async with db.write() as conn:
        for product_id, quantity in lines:
            await conn.execute(
                update(stock)
                .where(stock.c.product_id == product_id)
                .values(available=new_counts[product_id], reserved=stock.c.reserved + quantity)
            )
    return new_counts
