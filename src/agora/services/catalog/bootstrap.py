"""The catalog service's composition root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import orjson
from pydantic import TypeAdapter
from sqlalchemy.exc import IntegrityError

from agora.messaging import Infrastructure, Service, new_id
from agora.services.catalog import store
from agora.services.catalog.handlers import DEMO_CATALOG, HANDLERS, SeedProduct, seed_catalog
from agora.services.catalog.store import CatalogUnitOfWork
from agora.services.spec import ServiceContext
from agora.shared.cache import ReadCache
from agora.shared.cache.in_process import InProcessReadCache

logger = logging.getLogger(__name__)


SEARCH_GENERATION = "search-generation"
GENERATION_TTL = 24 * 3600.0


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
        self._seed = seed

    def unit_of_work(self) -> CatalogUnitOfWork:
        uow = self.platform.unit_of_work(CatalogUnitOfWork)
        uow.after_commit(lambda: self._forget_soon(uow.changed_products))
        return uow

    async def forget(self, *product_ids: str) -> None:
        """Drop the cached views of `product_ids`, and every cached search by starting a new
        search generation (one write, however many searches are cached: those of the old
        generation are never read again and expire)."""
        await self.cache.delete(*(f"product:{product_id}" for product_id in product_ids))
        await self.cache.set(SEARCH_GENERATION, new_id().encode(), GENERATION_TTL)

    async def search_generation(self) -> str:
        """The current search generation, part of every cached search's key. A search that read
        it before a change stores its result under the old one, where nobody looks."""
        generation = await self.cache.get(SEARCH_GENERATION)
        if generation is None:  # never set, expired or evicted: start one
            generation = new_id().encode()
            await self.cache.set(SEARCH_GENERATION, generation, GENERATION_TTL)
        return generation.decode()

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


def bootstrap(context: ServiceContext) -> CatalogService:
    return CatalogService(
        context.infrastructure,
        seed=load_seed(context.settings.seed_file),
        cache=context.shared.read_cache("catalog"),
    )


def load_seed(path: Path | None) -> Sequence[SeedProduct]:
    """The products of a seed file (a JSON list), or the demo catalog."""
    if path is None:
        return DEMO_CATALOG
    return TypeAdapter(list[SeedProduct]).validate_python(orjson.loads(path.read_bytes()))
