"""Catalog's cached views: rendered products and searches in the read cache, and how they are
dropped when a product changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from agora.auth import Principal
from agora.messaging import Database, new_id
from agora.services.catalog.domain import ProductNotFound, may_manage
from agora.services.catalog.schemas import ProductOut
from agora.services.catalog.store import product_by_id
from agora.shared.cache import ReadCache

__all__ = ["CachedViews"]

logger = logging.getLogger(__name__)

SEARCH_GENERATION = "search-generation"
GENERATION_TTL = 24 * 3600.0


class CachedViews:
    def __init__(self, cache: ReadCache, ttl: float = 30.0) -> None:
        self.cache = cache
        self.ttl = ttl
        self._forgetting: set[asyncio.Task[None]] = set()

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

    async def product(self, db: Database, product_id: str) -> ProductOut:
        """The product as anyone may see it (listed or not: the caller decides who may)."""
        key = f"product:{product_id}"
        cached = await self.cache.get(key)
        if cached is not None:
            return ProductOut.model_validate_json(cached)
        async with db.read() as conn:
            row = await product_by_id(conn, product_id)
        if row is None:
            raise ProductNotFound(product_id)
        view = ProductOut.of(row)
        await self.cache.set(key, view.model_dump_json().encode(), self.ttl)
        return view

    async def product_for(
        self, db: Database, caller: Principal | None, product_id: str
    ) -> ProductOut:
        """The product if `caller` may see it: listed, or unlisted for who manages it."""
        view = await self.product(db, product_id)
        if not (view.listed or may_manage(caller, view.seller_id)):
            raise ProductNotFound(product_id)
        return view

    async def search(self, query: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The rendered result of the search `query` (any string naming it whole), from the
        cache of the current search generation, else rendered now and cached."""
        key = f"search:{await self.search_generation()}:{query}"
        cached = await self.cache.get(key)
        if cached is not None:
            return cached
        body = await render()
        await self.cache.set(key, body, self.ttl)
        return body

    def forget_soon(self, product_ids: Iterable[str]) -> None:
        """`forget` in the background (after a commit, which must not wait for the cache)."""
        ids = tuple(product_ids)
        if not ids:
            return
        task = asyncio.create_task(self.forget(*ids))
        self._forgetting.add(task)
        task.add_done_callback(self._forgot)

    def _forgot(self, task: asyncio.Task[None]) -> None:
        self._forgetting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("dropping cached products failed: %r", task.exception())
