"""The catalog service's composition root."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from agora.messaging import Infrastructure, Service
from agora.services.catalog import store
from agora.services.catalog.handlers import HANDLERS, announce_stores, seed_catalog
from agora.services.catalog.repository import CatalogUnitOfWork
from agora.services.catalog.seed import DEMO_CATALOG, SeedProduct
from agora.services.catalog.views import CachedViews
from agora.services.spec import ServiceContext
from agora.shared.cache import ReadCache
from agora.shared.cache.in_process import InProcessReadCache


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
        self.views = CachedViews(cache or InProcessReadCache(), cache_ttl)
        self.platform.subscribe(HANDLERS, self.unit_of_work)
        self._seed = seed

    def unit_of_work(self) -> CatalogUnitOfWork:
        uow = self.platform.unit_of_work(CatalogUnitOfWork)
        uow.after_commit(lambda: self.views.forget_soon(uow.changed_products))
        return uow

    async def start(self) -> None:
        with contextlib.suppress(IntegrityError):  # another replica seeded it meanwhile
            async with self.unit_of_work() as uow:
                await seed_catalog(uow, self._seed)
        while True:
            async with self.unit_of_work() as uow:
                if not await announce_stores(uow):
                    break


def bootstrap(context: ServiceContext) -> CatalogService:
    return CatalogService(
        context.infrastructure,
        seed=load_seed(context.settings.seed_file),
        cache=context.shared.read_cache("catalog"),
    )


class InvalidSeedFile(ValueError):
    """The seed file cannot be read, is not JSON, or is not a list of products."""


def load_seed(path: Path | None) -> Sequence[SeedProduct]:
    """The products of the seed file at `path` (the demo catalog if None); `InvalidSeedFile`
    names the file and its first mistake."""
    if path is None:
        return DEMO_CATALOG
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as error:
        raise InvalidSeedFile(f"cannot read the seed file {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise InvalidSeedFile(f"the seed file {path} is not JSON: {error}") from None
    try:
        return TypeAdapter(list[SeedProduct]).validate_python(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise InvalidSeedFile(
            f"the seed file {path} is not a JSON list of products: {where or 'the file'}: "
            f"{first['msg']}{more}"
        ) from None
