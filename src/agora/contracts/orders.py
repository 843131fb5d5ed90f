"""Events of orders: the saga's beginning and its outcomes."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from agora.contracts.types import Amount, Currency, Quantity
from agora.messaging import Event

__all__ = [
    "ConfirmedPlace",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderExpired",
    "OrderLine",
    "OrderPlaced",
    "PaymentRequested",
    "PaymentShare",
    "TicketLine",
]


class _OrderEvent(Event):
    topic: ClassVar[str] = "orders"
    key_field: ClassVar[str] = "order_id"


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: str
    quantity: Quantity
    unit_price: Amount


class TicketLine(BaseModel):
    """Places in one category of one session: the named `seat_ids`, or (none named) the
    `quantity` best available ones; a general-admission category is always a count. With
    `waitlist_id`, the places the waiting list offered that entry's buyer."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: str
    category: str
    quantity: Quantity
    unit_price: Amount
    seat_ids: tuple[str, ...] = ()
    waitlist_id: str | None = None


class OrderPlaced(_OrderEvent):
    order_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    total: Amount
    currency: Currency
    tickets: tuple[TicketLine, ...] = ()


class PaymentShare(BaseModel):
    """What one store sells in an order: its goods, or one session's tickets (`session_id`).
    The shares of a payment add up to its amount; `store_id` is None for goods whose store
    orders never learned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    store_id: str | None
    seller_id: str | None = None
    amount: Amount
    session_id: str | None = None


class PaymentRequested(_OrderEvent):
    order_id: str
    customer_id: str
    amount: Amount
    currency: Currency
    payment_token: str
    shares: tuple[PaymentShare, ...] = ()


class ConfirmedPlace(BaseModel):
    """One admission paid for: a seat, or a place in a general-admission area, at its price."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: str
    category: str
    price: Amount
    seat_id: str | None = None
    area_id: str | None = None


class OrderConfirmed(_OrderEvent):
    order_id: str
    customer_id: str
    total: Amount
    currency: Currency
    lines: tuple[OrderLine, ...] = ()
    places: tuple[ConfirmedPlace, ...] = ()


class OrderCancelled(_OrderEvent):
    order_id: str
    customer_id: str
    reason: str


class OrderExpired(_OrderEvent):
    """The order was not paid before its hold ran out."""

    order_id: str
    customer_id: str
