"""The orders service: orders and their state machine, idempotency keys."""

from agora.services.orders.api import build_router
from agora.services.orders.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="orders",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/orders", "/ws/orders"),
    consumer_groups=("orders",),
    workers=(),
)
