"""The catalog service's composition root."""

from __future__ import annotations

from collections.abc import Sequence

from agora.messaging import Infrastructure, UnitOfWork
from agora.services.catalog import store
from agora.services.catalog.api import build_router
from agora.services.catalog.handlers import DEMO_CATALOG, HANDLERS, SeedProduct, seed_catalog


class CatalogService:
    name = "catalog"

    def __init__(
        self, infrastructure: Infrastructure, *, seed: Sequence[SeedProduct] = DEMO_CATALOG
    ) -> None:
        self.platform = infrastructure.platform(self.name, store.metadata)
        self.platform.subscribe(HANDLERS, self.unit_of_work)
        self.router = build_router(self)
        self._seed = seed

    def unit_of_work(self) -> UnitOfWork:
        return self.platform.unit_of_work()

    async def start(self) -> None:
        await self.platform.db.create_tables()
        async with self.unit_of_work() as uow:
            await seed_catalog(uow, self._seed)

    async def refresh_metrics(self) -> None:
        return None


def bootstrap(
    infrastructure: Infrastructure, *, seed: Sequence[SeedProduct] = DEMO_CATALOG
) -> CatalogService:
    return CatalogService(infrastructure, seed=seed)
