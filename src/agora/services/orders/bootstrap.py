"""The orders service's composition root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import Gauge

from agora.messaging import Infrastructure, Service
from agora.services.orders import store
from agora.services.orders.changes import OrderChanges
from agora.services.orders.domain import OrderStatus
from agora.services.orders.handlers import HANDLERS
from agora.services.orders.repository import OrdersUnitOfWork
from agora.services.spec import ServiceContext
from agora.sockets import LiveMetrics


class OrdersService(Service):
    name = "orders"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        in_flight_timeout: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        self.in_flight_timeout = in_flight_timeout
        self.changes = OrderChanges()
        self.live = LiveMetrics.of(infrastructure.metrics_registry)
        super().__init__(infrastructure, store.metadata)
        self.platform.subscribe(HANDLERS, self.unit_of_work)
        self._orders = Gauge(
            "agora_orders",
            "Orders by status",
            ["status"],
            registry=infrastructure.metrics_registry,
        )
        Gauge(
            "agora_order_waiters",
            "Requests waiting for an order to change (Prefer: wait)",
            registry=infrastructure.metrics_registry,
        ).set_function(lambda: self.changes.waiting())

    def unit_of_work(self) -> OrdersUnitOfWork:
        uow = self.platform.unit_of_work(OrdersUnitOfWork)
        uow.after_commit(lambda: self.changes.announce(uow.changed_orders))
        return uow

    async def start(self) -> None:
        await self.changes.listen(self.platform.db)

    def drain(self) -> None:
        self.changes.close()

    async def refresh_metrics(self) -> None:
        async with self.platform.db.read() as conn:
            counts = await store.count_by_status(conn)
        for status in OrderStatus:
            self._orders.labels(status.value).set(counts.get(status.value, 0))


def bootstrap(context: ServiceContext) -> OrdersService:
    return OrdersService(
        context.infrastructure, in_flight_timeout=context.settings.idempotency_in_flight
    )
