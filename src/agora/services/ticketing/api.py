"""Ticketing's HTTP API: venues and events in stores, and sessions' sales."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel

from agora.auth import SellerOrAdmin
from agora.services.ticketing import handlers, tickets_api
from agora.services.ticketing.deps import TicketingServiceDep
from agora.services.ticketing.domain import EventPlan
from agora.services.ticketing.schemas import (
    EventIn,
    EventOut,
    EventsOut,
    Id,
    Page,
    PageSize,
    SessionOut,
    VenueIn,
    VenueOut,
    problems,
)

__all__ = ["build_router"]


class CancelledSessionOut(BaseModel):
    session: SessionOut
    tickets_cancelled: int


def created(model: BaseModel, location: str) -> Response:
    return Response(
        model.model_dump_json().encode(),
        status_code=201,
        media_type="application/json",
        headers={"Location": location},
    )


At = Annotated[
    AwareDatetime | None,
    Query(description="When (ISO 8601 with an offset); now if left out"),
]


def build_router() -> APIRouter:
    router = APIRouter(tags=["ticketing"])

    @router.post(
        "/api/stores/{store_id}/venues",
        status_code=201,
        response_model=VenueOut,
        summary="Describe a venue and its seating plan (the store's seller)",
        description=(
            "The plan is validated whole: a duplicate seat id, an unknown category or a size "
            "beyond the limits is a 422 whose `errors` name the seat (docs/seating-plan.md). "
            'Instead of a plan, `rows` (`{"rows": "A-T", "seats_per_row": 30}`) draws one.'
        ),
        responses=problems(403, 404, 422, 401),
    )
    async def create_venue(
        service: TicketingServiceDep, store_id: Id, body: VenueIn, seller: SellerOrAdmin
    ) -> Response:
        async with service.unit_of_work() as uow:
            venue_id = await handlers.create_venue(uow, seller, store_id, body.name, body.seating())
        venue = await handlers.read_venue(service.platform.db, venue_id)
        return created(VenueOut.of(venue), f"/api/venues/{venue_id}")

    @router.get(
        "/api/venues/{venue_id}",
        response_model=VenueOut,
        summary="A venue and its seating plan",
        responses=problems(404),
    )
    async def get_venue(service: TicketingServiceDep, venue_id: Id) -> VenueOut:
        return VenueOut.of(await handlers.read_venue(service.platform.db, venue_id))

    @router.post(
        "/api/stores/{store_id}/events",
        status_code=201,
        response_model=EventOut,
        summary="Schedule an event with its sessions in one of the store's venues",
        description=(
            "Each session puts the venue's whole plan on sale at the categories' prices (one "
            "price for each of the venue's categories). Sales stay closed until "
            "`POST /api/sessions/{id}/sales`."
        ),
        responses=problems(403, 404, 422, 401),
    )
    async def create_event(
        service: TicketingServiceDep, store_id: Id, body: EventIn, seller: SellerOrAdmin
    ) -> Response:
        asked = EventPlan(
            title=body.title,
            description=body.description,
            venue_id=body.venue_id,
            currency=body.currency,
            prices={category.name: category.price for category in body.categories},
            starts=[session.starts_at for session in body.sessions],
            hold_seconds=body.hold_minutes * 60,
            max_per_order=body.max_per_order,
            max_per_buyer=body.max_per_buyer,
            cancel_until_hours=body.cancel_until_hours,
            waitlist_offer_seconds=body.waitlist_offer_minutes * 60,
        )
        async with service.unit_of_work() as uow:
            event_id = await handlers.create_event(uow, seller, store_id, asked)
        event = await handlers.read_event(service.platform.db, event_id)
        return created(EventOut.of(event), f"/api/events/{event_id}")

    @router.get(
        "/api/events",
        response_model=EventsOut,
        summary="Events, soonest first",
        description="`q` searches titles and descriptions; `upcoming` keeps events with a "
        "session still to come.",
    )
    async def list_events(
        service: TicketingServiceDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        store: Annotated[str | None, Query(max_length=100)] = None,
        upcoming: bool = True,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> EventsOut:
        found, total = await handlers.list_events(
            service.platform.db,
            query=q,
            store_id=store,
            upcoming=upcoming,
            page=page,
            page_size=page_size,
        )
        return EventsOut(
            items=[EventOut.of(event) for event in found],
            page=page,
            page_size=page_size,
            total=total,
        )

    @router.get(
        "/api/events/{event_id}",
        response_model=EventOut,
        summary="An event, its price categories and sessions",
        responses=problems(404),
    )
    async def get_event(service: TicketingServiceDep, event_id: Id) -> EventOut:
        return EventOut.of(await handlers.read_event(service.platform.db, event_id))

    @router.post(
        "/api/sessions/{session_id}/sales",
        response_model=SessionOut,
        summary="Open a session's sales, now or at a time to come (the organizer)",
        description="Sales then last until the session starts, or until closed.",
        responses=problems(403, 404, 422, 401),
    )
    async def open_sales(
        service: TicketingServiceDep, session_id: Id, seller: SellerOrAdmin, at: At = None
    ) -> SessionOut:
        async with service.unit_of_work() as uow:
            session = await handlers.open_sales(uow, seller, session_id, at)
        return SessionOut.of(session)

    @router.delete(
        "/api/sessions/{session_id}/sales",
        response_model=SessionOut,
        summary="Close a session's sales, now or at a time to come (the organizer)",
        description="Holds taken before stay until they are paid or expire.",
        responses=problems(403, 404, 422, 401),
    )
    async def close_sales(
        service: TicketingServiceDep, session_id: Id, seller: SellerOrAdmin, at: At = None
    ) -> SessionOut:
        async with service.unit_of_work() as uow:
            session = await handlers.close_sales(uow, seller, session_id, at)
        return SessionOut.of(session)

    @router.post(
        "/api/sessions/{session_id}/cancel",
        response_model=CancelledSessionOut,
        summary="Call a session off (the organizer): every ticket refunded, buyers mailed",
        responses=problems(403, 404, 401),
    )
    async def cancel_session(
        service: TicketingServiceDep, session_id: Id, seller: SellerOrAdmin
    ) -> CancelledSessionOut:
        async with service.unit_of_work() as uow:
            session, voided = await handlers.cancel_session(uow, seller, session_id)
        return CancelledSessionOut(session=SessionOut.of(session), tickets_cancelled=voided)

    router.include_router(tickets_api.build_router())
    return router
