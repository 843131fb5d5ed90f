"""Who is told when an order changes: readers waiting for it (`Prefer: wait`) subscribe to
`order:<id>`; a committed change announces it, in this process at once and in every other
replica through PostgreSQL's NOTIFY (`repository.ORDER_CHANGES`), sent in the same commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager

from agora.messaging import Database
from agora.services.orders.repository import ORDER_CHANGES
from agora.shared.fanout.in_process import InProcessFanout

__all__ = ["OrderChanges"]


class OrderChanges:
    def __init__(self) -> None:
        # one pending announcement is enough: a reader re-reads the order when woken
        self._fanout = InProcessFanout(max_pending=1)
        self._announcing: set[asyncio.Task[None]] = set()

    def subscribe(
        self, order_id: str
    ) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, bytes]]]:
        return self._fanout.subscribe(f"order:{order_id}")

    def announce(self, order_ids: Iterable[str]) -> None:
        """Wake the readers of `order_ids` (called after their change committed)."""
        for order_id in order_ids:
            channel = f"order:{order_id}"
            if self._fanout.subscriber_count(channel):
                task = asyncio.create_task(self._fanout.publish(channel, b""))
                self._announcing.add(task)
                task.add_done_callback(self._announcing.discard)

    async def listen(self, db: Database) -> None:
        """Hear the changes other replicas commit (PostgreSQL; nothing to hear on SQLite); when
        some may have been missed, every waiting reader re-reads its order."""
        await db.listen(
            ORDER_CHANGES,
            lambda payload: self.announce(payload.split(",")),
            missed=lambda: self.announce(
                channel.removeprefix("order:") for channel in self._fanout.channels()
            ),
        )

    def close(self) -> None:
        """Answer every waiting reader now, and any that subscribes later at once."""
        self._fanout.close()

    def waiting(self) -> int:
        """Readers waiting for a change."""
        return self._fanout.subscription_count()

    def waiting_for(self, order_id: str) -> int:
        """Readers waiting for a change of `order_id`."""
        return self._fanout.subscriber_count(f"order:{order_id}")
