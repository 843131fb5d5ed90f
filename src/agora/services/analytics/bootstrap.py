"""The analytics service's composition root."""

from __future__ import annotations

from pathlib import Path

from agora.messaging import Infrastructure, Service
from agora.services.analytics import store
from agora.services.analytics.handlers import handlers_for
from agora.services.analytics.repository import AnalyticsUnitOfWork
from agora.services.spec import ServiceContext


class AnalyticsService(Service):
    name = "analytics"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, infrastructure: Infrastructure) -> None:
        super().__init__(infrastructure, store.metadata)
        self.platform.subscribe(handlers_for(infrastructure.registry.events), self.unit_of_work)

    def unit_of_work(self) -> AnalyticsUnitOfWork:
        return self.platform.unit_of_work(AnalyticsUnitOfWork)


def bootstrap(context: ServiceContext) -> AnalyticsService:
    return AnalyticsService(context.infrastructure)
