"""The inventory service: stock levels, sessions' seats and places, and holds of both."""

from agora.services.inventory.api import build_router
from agora.services.inventory.bootstrap import bootstrap
from agora.services.spec import ServiceSpec

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="inventory",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=(
        "/api/stock",
        "/api/sessions/{session_id}/seats",
        "/api/sessions/{session_id}/waitlist",
        "/ws/sessions",
        "/api/waitlist",
    ),
    consumer_groups=("inventory",),
    workers=("hold-sweeper", "change-log-pruner"),
)
