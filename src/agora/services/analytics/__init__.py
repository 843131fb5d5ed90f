"""The analytics service: read models: saga timelines, sales."""

from agora.services.analytics.api import build_router
from agora.services.analytics.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="analytics",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/orders/{order_id}/timeline",),
    consumer_groups=("analytics",),
    workers=(),
)
