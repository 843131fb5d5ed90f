"""The catalog service's composition root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from agora.gateway.cache import InProcessReadCache, ReadCache
from agora.messaging import Infrastructure, Service
from agora.services.catalog import store
from agora.services.catalog.api import build_router
from agora.services.catalog.handlers import DEMO_CATALOG, HANDLERS, SeedProduct, seed_catalog
from agora.services.catalog.store import CatalogUnitOfWork

logger = logging.getLogger(__name__)


class CatalogService(Service):
    name = "catalog"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        seed: Sequence[SeedProduct] = DEMO_CATALOG,
        cache: ReadCache | None = None,
        cache_ttl: float = 30.0,
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        self.cache: ReadCache = cache or InProcessReadCache()
        self.cache_ttl = cache_ttl
        self._forgetting: set[asyncio.Task[None]] = set()
        self.platform.subscribe(HANDLERS, self.unit_of_work)
        self.router = build_router(self)
        self._seed = seed

    def unit_of_work(self) -> CatalogUnitOfWork:
        uow = self.platform.unit_of_work(CatalogUnitOfWork)
        uow.after_commit(lambda: self._forget_soon(uow.changed_products))
        return uow

    async def forget(self, *product_ids: str) -> None:
        """Drop the cached views of `product_ids` and every cached search."""
        await self.cache.delete(*(f"product:{product_id}" for product_id in product_ids))
        await self.cache.delete_prefix("search:")

    def _forget_soon(self, product_ids: set[str]) -> None:
        if not product_ids:
            return
        task = asyncio.create_task(self.forget(*product_ids))
        self._forgetting.add(task)
        task.add_done_callback(self._forgot)

    def _forgot(self, task: asyncio.Task[None]) -> None:
        self._forgetting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("dropping cached products failed: %r", task.exception())

    async def start(self) -> None:
        with contextlib.suppress(IntegrityError):  # another replica seeded it meanwhile
            async with self.unit_of_work() as uow:
                await seed_catalog(uow, self._seed)


def bootstrap(
    infrastructure: Infrastructure,
    *,
    seed: Sequence[SeedProduct] = DEMO_CATALOG,
    cache: ReadCache | None = None,
) -> CatalogService:
    return CatalogService(infrastructure, seed=seed, cache=cache)
