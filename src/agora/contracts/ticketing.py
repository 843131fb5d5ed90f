"""Events of ticketing: events (shows, courses) scheduled in venues, their sessions' sales."""

import dataclasses
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agora.contracts.seating import SeatingPlan
from agora.contracts.types import Amount, Currency
from agora.messaging import Event

__all__ = [
    "EventScheduled",
    "PriceCategory",
    "SalesClosed",
    "SalesOpened",
    "SalesWindow",
    "ScheduledSession",
    "TicketCancelled",
    "TicketCheckedIn",
    "TicketIssued",
]


class _EventOfEvents(Event):
    """Everything about one event goes on one key, in order: its sessions are known before their
    sales open."""

    topic: ClassVar[str] = "ticketing"
    key_field: ClassVar[str] = "event_id"


class PriceCategory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    price: Amount


class ScheduledSession(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: str
    starts_at: datetime


class EventScheduled(_EventOfEvents):
    """An organizer scheduled an event: each session puts the venue's whole plan on sale at the
    categories' prices. Sales are closed until `SalesOpened`."""

    event_id: str
    store_id: str
    seller_id: str | None
    title: str
    currency: Currency
    categories: tuple[PriceCategory, ...]
    sessions: tuple[ScheduledSession, ...]
    venue_id: str
    plan: SeatingPlan
    hold_seconds: int = Field(ge=60)
    max_per_order: int = Field(ge=1)
    max_per_buyer: int = Field(ge=1)
    cancel_until_hours: int = Field(ge=0)
    waitlist_offer_seconds: int = Field(3600, ge=60)


class SalesOpened(_EventOfEvents):
    """Places of the session may be held from `opens_at` on (now, or a time to come) until the
    session starts."""

    event_id: str
    session_id: str
    opens_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class SalesWindow:
    """What `SalesOpened` and `SalesClosed` mean, as every context that acts on them reads it:
    places of a session may be held from `opens_at` (None: not opened) until `closes_at` (None:
    until the session starts)."""

    starts_at: datetime
    opens_at: datetime | None
    closes_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why a hold is refused at `now`, or None while sales are open."""
        if self.opens_at is None:
            return "sales have not opened"
        if now < self.opens_at:
            return f"sales open at {self.opens_at.isoformat()}"
        if self.closes_at is not None and now >= self.closes_at:
            return "sales have closed"
        if now >= self.starts_at:
            return "the session has started"
        return None

    def is_open(self, now: datetime) -> bool:
        return self.refusal(now) is None


class SalesClosed(_EventOfEvents):
    """Holds on the session are refused from `closes_at` on."""

    event_id: str
    session_id: str
    closes_at: datetime


class _TicketEvent(Event):
    topic: ClassVar[str] = "ticketing"
    key_field: ClassVar[str] = "ticket_id"


class TicketIssued(_TicketEvent):
    """A paid place became a ticket; `code` is what its QR code carries (a signed JWT that a
    scanner verifies offline against `GET /api/tickets/keys`)."""

    ticket_id: str
    order_id: str
    customer_id: str
    event_id: str
    session_id: str
    category: str
    seat_id: str | None = None
    area_id: str | None = None
    attendee: str | None = None
    code: str


class TicketCheckedIn(_TicketEvent):
    ticket_id: str
    session_id: str
    checked_in_at: datetime
    gate: str | None = None


class TicketCancelled(_TicketEvent):
    """The ticket is void (its buyer cancelled it, or the organizer the session): its price is
    refunded and its place goes back on sale."""

    ticket_id: str
    order_id: str
    customer_id: str
    session_id: str
    category: str
    seat_id: str | None = None
    area_id: str | None = None
    price: Amount
    currency: Currency
    reason: str
