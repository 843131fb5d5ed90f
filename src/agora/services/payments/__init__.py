"""The payments service: payments and their attempts at the card provider, and the ledger of
where the money went (stores, commission, the provider's fees, refunds)."""

from agora.services.payments.api import build_router
from agora.services.payments.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="payments",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=(
        "/api/payments",
        "/api/stores/{store_id}/balance",
        "/api/stores/{store_id}/ledger",
        "/api/stores/{store_id}/ledger.csv",
        "/api/stores/{store_id}/payouts",
        "/api/ledger",
    ),
    consumer_groups=("payments",),
    workers=("processor",),
)
