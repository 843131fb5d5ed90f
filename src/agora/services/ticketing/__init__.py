"""The ticketing service: venues and their seating plans, events with price categories and
sessions, each session's sales, and the tickets issued for paid places with their check-ins
(docs/ticketing.md)."""

from agora.services.spec import ServiceSpec
from agora.services.ticketing.api import build_router
from agora.services.ticketing.bootstrap import bootstrap

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="ticketing",
    package=__name__,
    bootstrap=bootstrap,
    router=build_router,
    paths=(
        "/api/stores/{store_id}/venues",
        "/api/stores/{store_id}/events",
        "/api/venues",
        "/api/events",
        "/api/sessions/{session_id}/sales",
        "/api/sessions/{session_id}/checkins",
        "/api/sessions/{session_id}/cancel",
        "/api/tickets",
        "/api/checkins",
    ),
    consumer_groups=("ticketing",),
    workers=(),
)
