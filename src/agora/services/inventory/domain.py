"""Inventory's rules and values, without I/O: a product's stock level, a session's sales
window, and why places cannot be held."""

from __future__ import annotations

import dataclasses
import datetime as dt

from agora.problems import NotFound

__all__ = [
    "AreaPlaces",
    "PlacesUnavailable",
    "ProductNotFound",
    "SalesWindow",
    "SeatMap",
    "SessionNotFound",
    "StockLevel",
]


@dataclasses.dataclass(frozen=True, slots=True)
class StockLevel:
    """A product's units: `available` to order, `reserved` by holds, `sold`. Conserved: their
    sum only grows when stock is added."""

    product_id: str
    seller_id: str | None
    available: int
    reserved: int
    sold: int


class ProductNotFound(NotFound):
    def __init__(self, product_id: str) -> None:
        super().__init__("product-not-found", "Product not found", f"no stock for {product_id}")


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        super().__init__("session-not-found", "Session not found", f"no session {session_id}")


@dataclasses.dataclass(frozen=True, slots=True)
class SalesWindow:
    """When a session's places may be held: from `opens_at` (None: not opened yet) until
    `closes_at` (None: until the session starts)."""

    starts_at: dt.datetime
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None

    def refusal(self, now: dt.datetime) -> str | None:
        """Why a hold is refused at `now`, or None if sales are open."""
        if self.opens_at is None:
            return "sales have not opened"
        if now < self.opens_at:
            return f"sales open at {self.opens_at.isoformat()}"
        if self.closes_at is not None and now >= self.closes_at:
            return "sales have closed"
        if now >= self.starts_at:
            return "the session has started"
        return None

    def is_open(self, now: dt.datetime) -> bool:
        return self.refusal(now) is None


class PlacesUnavailable(Exception):
    """A ticket line's places cannot be held (all or nothing: nothing of the order is)."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"session {session_id}: {reason}")
        self.session_id = session_id
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class AreaPlaces:
    capacity: int
    available: int


@dataclasses.dataclass(frozen=True, slots=True)
class SeatMap:
    """A session's places as buyers see them: the plan (JSON, as the organizer drew it), each
    seat's state, each area's free places, and the `version` every change grows."""

    session_id: str
    event_id: str
    version: int
    window: SalesWindow
    plan_json: str
    seats: dict[str, str]
    areas: dict[str, AreaPlaces]
