"""Inventory's rules and values, without I/O: a product's stock level, a session's seat map,
and why places cannot be held (a session's sales window is the contract's `SalesWindow`)."""

from __future__ import annotations

import dataclasses

from agora.contracts.ticketing import SalesWindow
from agora.problems import NotFound

__all__ = [
    "AreaPlaces",
    "PlacesUnavailable",
    "ProductNotFound",
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
