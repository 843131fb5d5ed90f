"""Ticketing's request and response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

from agora.auth import AUTHORIZE
from agora.contracts.seating import SeatingPlan, rows_plan
from agora.contracts.types import AmountIn, CurrencyIn, RequestModel, check_minor_units
from agora.messaging import utcnow
from agora.services.ticketing.store import Event, Session, Venue

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5_000)]
CategoryName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Id = Annotated[str, Path(min_length=1, max_length=100)]
Page = Annotated[int, Query(ge=1, le=10_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=100)]
# A JSON string such as "2027-03-01T19:30:00+01:00": with its offset, so it names one instant.
Instant = Annotated[AwareDatetime, Field(strict=False)]

MAX_SESSIONS = 100


class RowsIn(RequestModel):
    """A quick plan: one zone of `rows` ("A-T" or "1-40", the first the best) of
    `seats_per_row` seats, all in `category`."""

    rows: Annotated[str, StringConstraints(max_length=20)] = Field(examples=["A-T"])
    seats_per_row: int = Field(ge=1, le=1_000, examples=[30])
    category: CategoryName = "standard"


class VenueIn(RequestModel):
    """A venue: its `plan` (docs/seating-plan.md), or `rows` to have one drawn."""

    name: Name
    plan: SeatingPlan | None = None
    rows: RowsIn | None = None

    @model_validator(mode="after")
    def _one_plan(self) -> VenueIn:
        if (self.plan is None) == (self.rows is None):
            raise ValueError("give exactly one of `plan` and `rows`")
        return self

    def seating(self) -> SeatingPlan:
        if self.plan is not None:
            return self.plan
        assert self.rows is not None
        return rows_plan(self.rows.rows, self.rows.seats_per_row, category=self.rows.category)

    @model_validator(mode="after")
    def _rows_readable(self) -> VenueIn:
        if self.rows is not None:
            self.seating()  # a ValueError names what `rows` accepts
        return self


class VenueOut(BaseModel):
    id: str
    store_id: str
    name: str
    seats: int
    capacity: int = Field(description="Seats plus general-admission places")
    created_at: dt.datetime
    plan: SeatingPlan

    @classmethod
    def of(cls, venue: Venue) -> VenueOut:
        return cls(
            id=venue.id,
            store_id=venue.store_id,
            name=venue.name,
            seats=venue.seats,
            capacity=venue.capacity,
            created_at=venue.created_at,
            plan=SeatingPlan.model_validate_json(venue.plan_json),
        )


class CategoryIn(RequestModel):
    name: CategoryName
    price: AmountIn


class SessionIn(RequestModel):
    starts_at: Instant


class EventIn(RequestModel):
    title: Name
    description: Description = ""
    venue_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    currency: CurrencyIn
    categories: list[CategoryIn] = Field(
        min_length=1, max_length=100, description="A price for each of the venue's categories"
    )
    sessions: list[SessionIn] = Field(min_length=1, max_length=MAX_SESSIONS)
    hold_minutes: int = Field(10, ge=1, le=60, description="How long a hold lasts unpaid")
    max_per_order: int = Field(10, ge=1, le=20, description="Tickets in one order, at most")
    max_per_buyer: int = Field(10, ge=1, le=100, description="Tickets per buyer per session")
    cancel_until_hours: int = Field(
        24, ge=0, le=8_760, description="Buyers may cancel until this long before the session"
    )
    waitlist_offer_minutes: int = Field(
        60,
        ge=5,
        le=2_880,
        description="How long places offered to the next on a sold-out session's waiting list "
        "stay theirs",
    )

    @model_validator(mode="after")
    def _prices(self) -> EventIn:
        names = [category.name for category in self.categories]
        if len(set(names)) != len(names):
            raise ValueError("each category is priced once")
        for category in self.categories:
            check_minor_units(category.price, self.currency)
        return self


class SalesOut(BaseModel):
    open: bool
    cancelled_at: dt.datetime | None = None
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None


class SessionOut(BaseModel):
    id: str
    event_id: str
    starts_at: dt.datetime
    sales: SalesOut

    @classmethod
    def of(cls, session: Session, event_id: str | None = None) -> SessionOut:
        return cls(
            id=session.id,
            event_id=event_id or session.event_id,
            starts_at=session.starts_at,
            sales=SalesOut(
                open=session.sales_open(utcnow()),
                opens_at=session.opens_at,
                closes_at=session.closes_at,
                cancelled_at=session.cancelled_at,
            ),
        )


class CategoryOut(BaseModel):
    name: str
    price: str


class EventOut(BaseModel):
    id: str
    store_id: str
    venue_id: str
    title: str
    description: str
    currency: str
    categories: list[CategoryOut]
    sessions: list[SessionOut]
    hold_minutes: int
    max_per_order: int
    max_per_buyer: int
    cancel_until_hours: int
    waitlist_offer_minutes: int
    created_at: dt.datetime

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            store_id=event.store_id,
            venue_id=event.venue_id,
            title=event.title,
            description=event.description,
            currency=event.currency,
            categories=[CategoryOut(name=n, price=str(p)) for n, p in event.categories],
            sessions=[SessionOut.of(s, event.id) for s in event.sessions],
            hold_minutes=event.hold_seconds // 60,
            max_per_order=event.max_per_order,
            max_per_buyer=event.max_per_buyer,
            cancel_until_hours=event.cancel_until_hours,
            waitlist_offer_minutes=event.waitlist_offer_seconds // 60,
            created_at=event.created_at,
        )


class EventsOut(BaseModel):
    items: list[EventOut]
    page: int
    page_size: int
    total: int


DESCRIBED = {
    **{code: value["description"] for code, value in AUTHORIZE.items()},
    403: "Not the store's or event's seller (nor an admin), or a role that may not do this",
    404: "No such store, venue, event, session or ticket, or not the caller's",
    409: "The ticket was used (the body says when and where) or cannot be cancelled",
    422: "Invalid request, or a ticket code we did not sign (the problem names what)",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problems a route answers, for its OpenAPI `responses`."""
    return {
        code: {"description": DESCRIBED[code], "content": {"application/problem+json": {}}}
        for code in codes
    }
