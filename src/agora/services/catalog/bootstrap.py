"""The catalog service's composition root."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from agora.messaging import Infrastructure, Service
from agora.services.catalog import store
from agora.services.catalog.api import build_router
from agora.services.catalog.handlers import DEMO_CATALOG, HANDLERS, SeedProduct, seed_catalog


class CatalogService(Service):
    name = "catalog"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self, infrastructure: Infrastructure, *, seed: Sequence[SeedProduct] = DEMO_CATALOG
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        self.platform.subscribe(HANDLERS, self.unit_of_work)
        self.router = build_router(self)
        self._seed = seed

    async def start(self) -> None:
        with contextlib.suppress(IntegrityError):  # another replica seeded it meanwhile
            async with self.unit_of_work() as uow:
                await seed_catalog(uow, self._seed)


def bootstrap(
    infrastructure: Infrastructure, *, seed: Sequence[SeedProduct] = DEMO_CATALOG
) -> CatalogService:
    return CatalogService(infrastructure, seed=seed)
