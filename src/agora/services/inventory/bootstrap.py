"""The inventory service's composition root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import Gauge

from agora.messaging import Infrastructure, Service
from agora.services.inventory import store
from agora.services.inventory.feed import PlaceFeed
from agora.services.inventory.handlers import InventoryHandlers
from agora.services.inventory.locking import LOCK_TIMEOUT
from agora.services.inventory.repository import InventoryUnitOfWork
from agora.services.inventory.workers import HoldSweeper
from agora.services.spec import ServiceContext
from agora.sockets import LiveMetrics

PRUNE_EVERY = 60.0
"""Seconds between two prunings of the seat maps' change log."""


class InventoryService(Service):
    name = "inventory"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        hold_time: dt.timedelta,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        handlers = InventoryHandlers(hold_time, lock_timeout=lock_timeout)
        self.handlers = handlers
        self.platform.subscribe(handlers.table, self.unit_of_work, prepare=handlers.lock_batch)
        self.feed = PlaceFeed(self.platform.db)
        self.live = LiveMetrics.of(infrastructure.metrics_registry)
        Gauge(
            "agora_seat_map_streams",
            "Seat map streams open in this process (WebSocket and Server-Sent Events)",
            registry=infrastructure.metrics_registry,
        ).set_function(lambda: self.feed.watching())
        sweeper = HoldSweeper(self.platform.db, self.unit_of_work, handlers.pass_on_lapsed_offers)
        self.platform.add_loop("hold-sweeper", sweeper.step)
        self.platform.add_loop("change-log-pruner", self._prune, idle=PRUNE_EVERY)

    async def _prune(self) -> float | None:
        await self.feed.prune()
        return None

    def unit_of_work(self) -> InventoryUnitOfWork:
        uow = self.platform.unit_of_work(InventoryUnitOfWork)
        uow.after_commit(lambda: self.feed.committed(uow.changed_sessions, uow.place_changes))
        return uow

    async def start(self) -> None:
        await self.feed.listen()

    def drain(self) -> None:
        self.feed.close()


def bootstrap(context: ServiceContext) -> InventoryService:
    settings = context.settings
    return InventoryService(
        context.infrastructure,
        hold_time=settings.hold_time,
        lock_timeout=settings.lock_timeout_seconds,
    )
