"""Orders: the state machine at the heart of the saga.

    PENDING ──StockReserved──▶ RESERVED ──PaymentSucceeded──▶ CONFIRMED
       │                          │ ╲
  StockRejected             PaymentFailed  HoldExpired
       ▼                          ▼          ▼
   CANCELLED ◀────────────────────┘       EXPIRED

Any other move raises InvalidTransition. Events that arrive after the order is final (a payment
that succeeds after the hold expired) change nothing here; payments refunds what it charged.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from agora.contracts import orders as events
from agora.contracts.orders import ConfirmedPlace, PaymentShare
from agora.contracts.orders import OrderLine as EventLine
from agora.messaging import Event, new_id, utcnow

__all__ = [
    "InvalidTransition",
    "Line",
    "Order",
    "OrderStatus",
    "PaymentNotAllowed",
    "Place",
    "Seller",
    "TicketLine",
]


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in FINAL


FINAL = frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED})

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.RESERVED, OrderStatus.CANCELLED}),
    OrderStatus.RESERVED: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class InvalidTransition(Exception):
    def __init__(self, order_id: str, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"order {order_id} cannot go from {current} to {target}")
        self.current = current
        self.target = target


class PaymentNotAllowed(Exception):
    """The order cannot be paid now (not reserved yet, already paying, or final)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    product_id: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclasses.dataclass(frozen=True, slots=True)
class TicketLine:
    """Places in one category of one session: the named `seat_ids`, or (none named) the
    `quantity` best available."""

    session_id: str
    category: str
    quantity: int
    unit_price: Decimal
    seat_ids: tuple[str, ...] = ()
    waitlist_id: str | None = None  # the waiting-list offer whose places these are

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclasses.dataclass(frozen=True, slots=True)
class Seller:
    """Who sells a product or a session: its store (None if orders never learned it) and the
    store's seller (None for the demo store)."""

    store_id: str | None
    seller_id: str | None


UNKNOWN_SELLER = Seller(None, None)


@dataclasses.dataclass(frozen=True, slots=True)
class Place:
    """One admission inventory holds for the order: a seat, or a place in an area."""

    session_id: str
    category: str
    seat_id: str | None = None
    area_id: str | None = None


@dataclasses.dataclass(slots=True, eq=False)
class Order:
    id: str
    customer_id: str
    lines: tuple[Line, ...]
    currency: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    payment_token: str | None = None
    payment_requested: bool = False
    cancel_reason: str | None = None
    hold_expires_at: datetime | None = None
    tickets: tuple[TicketLine, ...] = ()
    places: tuple[Place, ...] = ()
    events: list[Event] = dataclasses.field(default_factory=list)

    @classmethod
    def place(
        cls,
        customer_id: str,
        lines: Sequence[Line],
        currency: str,
        payment_token: str | None = None,
        order_id: str | None = None,
        tickets: Sequence[TicketLine] = (),
    ) -> Order:
        if not lines and not tickets:
            raise ValueError("an order needs at least one line")
        now = utcnow()
        order = cls(
            id=order_id or new_id(),
            customer_id=customer_id,
            lines=tuple(lines),
            currency=currency,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
            payment_token=payment_token,
            tickets=tuple(tickets),
        )
        order.events.append(
            events.OrderPlaced(
                order_id=order.id,
                customer_id=customer_id,
                lines=order.event_lines(),
                total=order.total,
                currency=currency,
                tickets=tuple(
                    events.TicketLine(
                        session_id=t.session_id,
                        category=t.category,
                        quantity=t.quantity,
                        unit_price=t.unit_price,
                        seat_ids=t.seat_ids,
                        waitlist_id=t.waitlist_id,
                    )
                    for t in order.tickets
                ),
            )
        )
        return order

    def event_lines(self) -> tuple[EventLine, ...]:
        return tuple(
            events.OrderLine(
                product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price
            )
            for line in self.lines
        )

    @property
    def at_rest(self) -> bool:
        """Nothing more happens to the order until its buyer acts: it is final, or reserved and
        waiting to be paid."""
        return self.status.is_final or (
            self.status is OrderStatus.RESERVED and not self.payment_requested
        )

    @property
    def total(self) -> Decimal:
        goods = sum((line.subtotal for line in self.lines), Decimal(0))
        return goods + sum((ticket.subtotal for ticket in self.tickets), Decimal(0))

    def _move_to(self, target: OrderStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise InvalidTransition(self.id, self.status, target)
        self.status = target
        self.updated_at = utcnow()

    def stock_reserved(
        self,
        expires_at: datetime,
        places: Sequence[Place] = (),
        sellers: Mapping[str, Seller] | None = None,
    ) -> None:
        """Inventory holds the order's stock and places until `expires_at`; an order placed
        with a payment token is paid now, in shares for the `sellers` of its products and
        sessions (by id)."""
        self._move_to(OrderStatus.RESERVED)
        self.hold_expires_at = expires_at
        self.places = tuple(places)
        if self.payment_token is not None:
            self._request_payment(self.payment_token, sellers or {})

    def stock_rejected(self, reason: str) -> None:
        self._cancel(f"out of stock: {reason}")

    def pay(self, payment_token: str, sellers: Mapping[str, Seller] | None = None) -> None:
        """A buyer pays an order placed without a payment token (in shares, as
        `stock_reserved`)."""
        if self.status is not OrderStatus.RESERVED:
            raise PaymentNotAllowed(f"order {self.id} is {self.status}, not RESERVED")
        if self.payment_requested:
            raise PaymentNotAllowed(f"order {self.id} is already being paid")
        self.payment_token = payment_token
        self._request_payment(payment_token, sellers or {})

    def shares(self, sellers: Mapping[str, Seller]) -> tuple[PaymentShare, ...]:
        """The order's total by store: each store's goods, and each session's tickets."""
        totals: dict[tuple[Seller, str | None], Decimal] = {}
        sold: list[tuple[Seller, str | None, Decimal]] = [
            (sellers.get(line.product_id, UNKNOWN_SELLER), None, line.subtotal)
            for line in self.lines
        ]
        sold += [
            (sellers.get(t.session_id, UNKNOWN_SELLER), t.session_id, t.subtotal)
            for t in self.tickets
        ]
        for seller, session_id, amount in sold:
            key = (seller, session_id)
            totals[key] = totals.get(key, Decimal(0)) + amount
        return tuple(
            PaymentShare(
                store_id=seller.store_id,
                seller_id=seller.seller_id,
                amount=amount,
                session_id=session_id,
            )
            for (seller, session_id), amount in totals.items()
        )

    def _request_payment(self, payment_token: str, sellers: Mapping[str, Seller]) -> None:
        self.payment_requested = True
        self.events.append(
            events.PaymentRequested(
                order_id=self.id,
                customer_id=self.customer_id,
                amount=self.total,
                currency=self.currency,
                payment_token=payment_token,
                shares=self.shares(sellers),
            )
        )

    def payment_succeeded(self) -> None:
        if self.status.is_final:
            return  # paid too late: payments refunds on the cancellation or expiry it sees
        self._move_to(OrderStatus.CONFIRMED)
        self.events.append(
            events.OrderConfirmed(
                order_id=self.id,
                customer_id=self.customer_id,
                total=self.total,
                currency=self.currency,
                lines=self.event_lines(),
                places=self.confirmed_places(),
            )
        )

    def confirmed_places(self) -> tuple[ConfirmedPlace, ...]:
        prices = {(t.session_id, t.category): t.unit_price for t in self.tickets}
        return tuple(
            events.ConfirmedPlace(
                session_id=place.session_id,
                category=place.category,
                price=prices[(place.session_id, place.category)],
                seat_id=place.seat_id,
                area_id=place.area_id,
            )
            for place in self.places
        )

    def payment_failed(self, reason: str) -> None:
        if self.status.is_final:
            return
        self._cancel(f"payment failed: {reason}")

    def hold_expired(self) -> None:
        if self.status.is_final:
            return  # confirmed or cancelled before the hold ran out
        self._move_to(OrderStatus.EXPIRED)
        self.events.append(events.OrderExpired(order_id=self.id, customer_id=self.customer_id))

    def _cancel(self, reason: str) -> None:
        self._move_to(OrderStatus.CANCELLED)
        self.cancel_reason = reason
        self.events.append(
            events.OrderCancelled(order_id=self.id, customer_id=self.customer_id, reason=reason)
        )
