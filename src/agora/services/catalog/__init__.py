"""The catalog service: stores, products, reviews, search."""

from agora.services.catalog.api import build_router
from agora.services.catalog.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="catalog",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/products", "/api/stores"),
    consumer_groups=("catalog",),
    workers=(),
)
