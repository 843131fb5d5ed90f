"""Events of inventory: stock reserved for orders, held until an expiry, released."""

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from agora.contracts.types import Quantity
from agora.messaging import Event

__all__ = [
    "AvailabilityChanged",
    "HeldPlace",
    "HoldExpired",
    "PlacesAvailable",
    "ReservedLine",
    "StockRejected",
    "StockReleased",
    "StockReserved",
    "WaitlistOfferLapsed",
    "WaitlistOffered",
]


class _OrderStockEvent(Event):
    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "order_id"


class ReservedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: str
    quantity: Quantity


class HeldPlace(BaseModel):
    """One admission held for an order: a seat, or (`seat_id` None) a place in the
    general-admission area `area_id`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: str
    category: str
    seat_id: str | None = None
    area_id: str | None = None


class StockReserved(_OrderStockEvent):
    """Every line of the order is held until `expires_at`: its products' units and, one by one,
    the places of its ticket lines."""

    order_id: str
    lines: tuple[ReservedLine, ...]
    expires_at: datetime
    places: tuple[HeldPlace, ...] = ()


class StockRejected(_OrderStockEvent):
    """Nothing was reserved: at least one line could not be (all or nothing)."""

    order_id: str
    reason: str
    product_id: str | None = None
    session_id: str | None = None


class StockReleased(_OrderStockEvent):
    order_id: str
    reason: str


class HoldExpired(_OrderStockEvent):
    """The order's hold ran out. Stock stays held until the order's owner decides (it expires the
    order, which releases the stock, unless the order was confirmed in the meantime)."""

    order_id: str


class AvailabilityChanged(Event):
    """A product's units available now; one per product per transaction (a batch of
    reservations announces where it left each product)."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "product_id"
    supersedes: ClassVar[bool] = True

    product_id: str
    available: int


class PlacesAvailable(Event):
    """How many places of a category of a session are free: sent when a hold takes the last
    ones, and whenever places come back, so that orders can refuse a sold-out category at the
    door."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "session_id"

    session_id: str
    category: str
    available: int


class _WaitlistEvent(Event):
    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "entry_id"


class WaitlistOffered(_WaitlistEvent):
    """Places came back on a sold-out session and the waiting list's next entry that they fit
    holds them until `expires_at`: its buyer takes them with an order naming `entry_id`."""

    entry_id: str
    session_id: str
    customer_id: str
    category: str
    quantity: Quantity
    places: tuple[HeldPlace, ...]
    expires_at: datetime


class WaitlistOfferLapsed(_WaitlistEvent):
    """The offer was not taken (it ran out, or its buyer left the list): its places went on
    to the next entry, or back on sale."""

    entry_id: str
    session_id: str
    customer_id: str
    reason: str
