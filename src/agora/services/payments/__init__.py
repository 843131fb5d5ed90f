"""The payments service: payments and their attempts at the card provider."""

from agora.services.payments.api import build_router
from agora.services.payments.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="payments",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=("/api/payments",),
    consumer_groups=("payments",),
    workers=("processor",),
)
