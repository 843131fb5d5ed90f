"""Ticketing's rules and values, without I/O: what an event needs to be scheduled, when its
sessions sell, and the problems a request may meet."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from agora.contracts.seating import SeatingPlan
from agora.problems import NotFound, ProblemError

__all__ = [
    "EventNotFound",
    "EventPlan",
    "InvalidEvent",
    "NotYourStore",
    "SessionNotFound",
    "StoreNotFound",
    "VenueNotFound",
    "check_event",
]


class StoreNotFound(NotFound):
    def __init__(self, store_id: str) -> None:
        super().__init__("store-not-found", "Store not found", f"no store {store_id}")


class VenueNotFound(NotFound):
    def __init__(self, venue_id: str) -> None:
        super().__init__("venue-not-found", "Venue not found", f"no venue {venue_id}")


class EventNotFound(NotFound):
    def __init__(self, event_id: str) -> None:
        super().__init__("event-not-found", "Event not found", f"no event {event_id}")


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        super().__init__("session-not-found", "Session not found", f"no session {session_id}")


class NotYourStore(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "not-your-store", "Not your store", detail)


class InvalidEvent(ProblemError):
    """An event that cannot be scheduled as asked (422, naming what is wrong)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-event", "The event cannot be scheduled", detail)


@dataclasses.dataclass(frozen=True, slots=True)
class EventPlan:
    """What an organizer asks for: an event in one of the store's venues."""

    title: str
    description: str
    venue_id: str
    currency: str
    prices: dict[str, Decimal]
    starts: Sequence[dt.datetime]
    hold_seconds: int
    max_per_order: int
    max_per_buyer: int
    cancel_until_hours: int
    waitlist_offer_seconds: int = 3600


def check_event(event: EventPlan, plan: SeatingPlan, now: dt.datetime) -> None:
    """Refuse (`InvalidEvent`) an event whose prices do not cover the venue's categories
    exactly, whose sessions are not all to come and distinct, or whose caps contradict."""
    missing = [c for c in plan.categories if c not in event.prices]
    if missing:
        raise InvalidEvent(f"no price for the venue's categories: {', '.join(missing)}")
    unknown = [c for c in event.prices if c not in plan.categories]
    if unknown:
        raise InvalidEvent(f"the venue has no categories {', '.join(unknown)}")
    past = [start for start in event.starts if start <= now]
    if past:
        raise InvalidEvent(f"a session must start in the future, not at {past[0].isoformat()}")
    if len(set(event.starts)) != len(event.starts):
        raise InvalidEvent("two sessions start at the same time")
    if event.max_per_order > event.max_per_buyer:
        raise InvalidEvent(
            f"max_per_order ({event.max_per_order}) exceeds max_per_buyer ({event.max_per_buyer})"
        )
