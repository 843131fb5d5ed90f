"""Ticketing's HTTP API for tickets: a buyer's tickets and their QR codes, check-in at the door,
the keys that verify ticket codes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints

from agora.auth import CurrentUser, DoorStaff
from agora.contracts.types import RequestModel
from agora.qr import qr_image
from agora.services.ticketing import tickets
from agora.services.ticketing.deps import TicketingServiceDep
from agora.services.ticketing.schemas import Id, Page, PageSize, problems
from agora.services.ticketing.store import Ticket

__all__ = ["build_router"]


class TicketOut(BaseModel):
    id: str
    order_id: str
    event_id: str
    session_id: str
    category: str
    seat_id: str | None
    area_id: str | None
    price: str
    currency: str
    attendee: str | None = Field(description="The buyer's name when the ticket was issued")
    state: Literal["VALID", "CANCELLED"]
    code: str = Field(description="What the QR code carries: a signed JWT (docs/ticketing.md)")
    issued_at: dt.datetime
    checked_in_at: dt.datetime | None
    checked_in_gate: str | None

    @classmethod
    def of(cls, ticket: Ticket) -> TicketOut:
        return cls(
            id=ticket.id,
            order_id=ticket.order_id,
            event_id=ticket.event_id,
            session_id=ticket.session_id,
            category=ticket.category,
            seat_id=ticket.seat_id,
            area_id=ticket.area_id,
            price=str(ticket.price),
            currency=ticket.currency,
            attendee=ticket.attendee,
            state="VALID" if ticket.state == "VALID" else "CANCELLED",
            code=ticket.code,
            issued_at=ticket.issued_at,
            checked_in_at=ticket.checked_in_at,
            checked_in_gate=ticket.checked_in_gate,
        )


class TicketsOut(BaseModel):
    items: list[TicketOut]
    page: int
    page_size: int
    total: int


class CheckInIn(RequestModel):
    code: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The session at whose door the code is scanned"
    )
    gate: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


class CheckInOut(BaseModel):
    ticket: TicketOut


class AdmittedOut(BaseModel):
    ticket_id: str
    attendee: str | None
    category: str
    seat_id: str | None
    area_id: str | None
    checked_in_at: dt.datetime
    gate: str | None


class CheckInsOut(BaseModel):
    session_id: str
    tickets: int = Field(description="Valid tickets of the session")
    checked_in: int
    admitted: list[AdmittedOut] = Field(description="Tickets checked in, latest first (1,000)")


class KeySetOut(BaseModel):
    keys: list[dict[str, Any]]


def build_router() -> APIRouter:
    router = APIRouter(tags=["tickets"])

    @router.get(
        "/api/tickets",
        response_model=TicketsOut,
        summary="My tickets, newest first",
        responses=problems(401, 403),
    )
    async def my_tickets(
        service: TicketingServiceDep, caller: CurrentUser, page: Page = 1, page_size: PageSize = 20
    ) -> TicketsOut:
        found, total = await tickets.tickets_of(service.platform.db, caller, page, page_size)
        return TicketsOut(
            items=[TicketOut.of(t) for t in found], page=page, page_size=page_size, total=total
        )

    @router.get(
        "/api/tickets/keys",
        response_model=KeySetOut,
        summary="The public keys of ticket codes (a JSON Web Key Set), for offline scanners",
    )
    async def ticket_keys(service: TicketingServiceDep) -> dict[str, object]:
        return await tickets.signing_key_set(service.platform.db)

    @router.get(
        "/api/tickets/{ticket_id}",
        response_model=TicketOut,
        summary="A ticket (its buyer, the event's seller, admins)",
        responses=problems(401, 403, 404),
    )
    async def get_ticket(
        service: TicketingServiceDep, ticket_id: Id, caller: CurrentUser
    ) -> TicketOut:
        return TicketOut.of(await tickets.read_ticket(service.platform.db, caller, ticket_id))

    for kind, media_type in (("svg", "image/svg+xml"), ("png", "image/png")):

        async def get_qr(
            service: TicketingServiceDep,
            ticket_id: Id,
            caller: CurrentUser,
            kind: Literal["svg", "png"] = kind,  # type: ignore[assignment]
        ) -> Response:
            ticket = await tickets.read_ticket(service.platform.db, caller, ticket_id)
            return Response(
                qr_image(ticket.code, kind),
                media_type="image/svg+xml" if kind == "svg" else "image/png",
                headers={"Cache-Control": "private, max-age=3600"},
            )

        router.add_api_route(
            f"/api/tickets/{{ticket_id}}/qr.{kind}",
            get_qr,
            methods=["GET"],
            summary=f"A ticket's QR code ({kind.upper()})",
            response_class=Response,
            responses={200: {"content": {media_type: {}}}, **problems(401, 403, 404)},
        )

    @router.post(
        "/api/tickets/{ticket_id}/cancel",
        response_model=TicketOut,
        summary="Give a ticket back (its buyer) before the organizer's deadline",
        description=(
            "The ticket is void at once; its price is refunded to the card it was paid with "
            "and its place goes back on sale. Refused (409 `ticket-not-cancellable`) once used, "
            "cancelled, or later than the event's `cancel_until_hours` before the session."
        ),
        responses=problems(401, 403, 404, 409),
    )
    async def cancel_ticket(
        service: TicketingServiceDep, ticket_id: Id, caller: CurrentUser
    ) -> TicketOut:
        async with service.unit_of_work() as uow:
            ticket = await tickets.cancel_ticket(uow, caller, ticket_id)
        return TicketOut.of(ticket)

    @router.post(
        "/api/checkins",
        response_model=CheckInOut,
        summary="Check a scanned code in at a session's door (its seller, their scanners, admins)",
        description=(
            "The first scan of a valid code admits (200); a second answers 409 "
            "`already-checked-in` with when and at which gate it was used; a code we did not "
            "sign, altered, or of another session is refused (422 `invalid-ticket-code`)."
        ),
        responses=problems(401, 403, 404, 409, 422),
    )
    async def check_in(
        service: TicketingServiceDep, body: CheckInIn, caller: DoorStaff
    ) -> CheckInOut:
        async with service.unit_of_work() as uow:
            ticket = await tickets.check_in(uow, caller, body.code, body.session_id, body.gate)
        return CheckInOut(ticket=TicketOut.of(ticket))

    @router.get(
        "/api/sessions/{session_id}/checkins",
        response_model=CheckInsOut,
        summary="A session's check-ins: counts and tickets admitted (seller, scanners, admins)",
        responses=problems(401, 403, 404),
    )
    async def checkins(
        service: TicketingServiceDep, session_id: Id, caller: DoorStaff
    ) -> CheckInsOut:
        issued, checked_in, admitted = await tickets.checkins_of(
            service.platform.db, caller, session_id
        )
        return CheckInsOut(
            session_id=session_id,
            tickets=issued,
            checked_in=checked_in,
            admitted=[
                AdmittedOut(
                    ticket_id=t.id,
                    attendee=t.attendee,
                    category=t.category,
                    seat_id=t.seat_id,
                    area_id=t.area_id,
                    checked_in_at=t.checked_in_at,
                    gate=t.checked_in_gate,
                )
                for t in admitted
                if t.checked_in_at is not None
            ],
        )

    return router
