"""The inventory service's composition root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agora.messaging import Infrastructure, Service, utcnow
from agora.services.inventory import store
from agora.services.inventory.handlers import (
    InventoryHandlers,
    announce_expired_holds,
    next_expiry,
)
from agora.services.spec import ServiceContext


class InventoryService(Service):
    name = "inventory"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, infrastructure: Infrastructure, *, hold_time: dt.timedelta) -> None:
        super().__init__(infrastructure, store.metadata)
        handlers = InventoryHandlers(hold_time)
        self.platform.subscribe(handlers.table, self.unit_of_work, prepare=handlers.lock_batch)
        self.sweeper = self.platform.add_loop("hold-sweeper", self.sweep_expired_holds)

    async def sweep_expired_holds(self) -> float | None:
        """Announce expired holds; returns seconds until the next hold expires."""
        async with self.platform.db.read() as conn:
            upcoming = await next_expiry(conn)
        if upcoming is None:
            return None
        if upcoming > utcnow():
            return (upcoming - utcnow()).total_seconds()
        async with self.unit_of_work() as uow:
            await announce_expired_holds(uow)
        return 0


def bootstrap(context: ServiceContext) -> InventoryService:
    return InventoryService(context.infrastructure, hold_time=context.settings.hold_time)
