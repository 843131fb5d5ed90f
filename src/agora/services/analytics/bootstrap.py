"""The analytics service's composition root."""

from __future__ import annotations

from agora.messaging import Infrastructure, UnitOfWork
from agora.services.analytics import store
from agora.services.analytics.api import build_router
from agora.services.analytics.handlers import handlers_for


class AnalyticsService:
    name = "analytics"

    def __init__(self, infrastructure: Infrastructure) -> None:
        self.platform = infrastructure.platform(self.name, store.metadata)
        self.platform.subscribe(handlers_for(infrastructure.registry.events), self.unit_of_work)
        self.router = build_router(self)

    def unit_of_work(self) -> UnitOfWork:
        return self.platform.unit_of_work()

    async def start(self) -> None:
        await self.platform.db.create_tables()

    async def refresh_metrics(self) -> None:
        return None


def bootstrap(infrastructure: Infrastructure) -> AnalyticsService:
    return AnalyticsService(infrastructure)
