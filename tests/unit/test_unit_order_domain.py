"""The order state machine: transitions, the contract events they emit, and exact totals."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agora.contracts import orders as events
from agora.services.orders.domain import (
    TRANSITIONS,
    InvalidTransition,
    Line,
    Order,
    OrderStatus,
    PaymentNotAllowed,
    Seller,
    TicketLine,
)

S = OrderStatus
SELLERS = {"beans": Seller("roastery", "seller-1"), "kettle": Seller("hardware", None)}
HOLD_EXPIRES = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# The diagram in the domain module's docstring, written out independently of TRANSITIONS.
ALLOWED: set[tuple[OrderStatus, OrderStatus]] = {
    (S.PENDING, S.RESERVED),
    (S.PENDING, S.CANCELLED),
    (S.RESERVED, S.CONFIRMED),
    (S.RESERVED, S.CANCELLED),
    (S.RESERVED, S.EXPIRED),
}
ALL_PAIRS = list(itertools.product(OrderStatus, repeat=2))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in ALLOWED]

LINES = (
    Line("beans", 3, Decimal("0.10")),
    Line("kettle", 1, Decimal("19.99")),
)


def placed(payment_token: str | None = None) -> Order:
    order = Order.place("cust-1", LINES, "EUR", payment_token, order_id="order-1")
    order.events.clear()
    return order


def in_status(status: OrderStatus, payment_token: str | None = None) -> Order:
    """An order brought to `status` through its public transitions, its events cleared."""
    order = placed(payment_token)
    if status is S.PENDING:
        return order
    if status is S.CANCELLED:
        order.stock_rejected("sold out")
    else:
        order.stock_reserved(HOLD_EXPIRES)
        if status is S.CONFIRMED:
            order.payment_succeeded()
        elif status is S.EXPIRED:
            order.hold_expired()
    assert order.status is status
    order.events.clear()
    return order


def snapshot(order: Order) -> tuple[object, ...]:
    return (
        order.status,
        order.updated_at,
        order.payment_token,
        order.payment_requested,
        order.cancel_reason,
        order.hold_expires_at,
        tuple(order.events),
    )


# -- the transition table ------------------------------------------------------------------


def test_transition_table_matches_the_saga_diagram() -> None:
    table = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(OrderStatus)
    assert {status for status in OrderStatus if status.is_final} == {
        S.CONFIRMED,
        S.CANCELLED,
        S.EXPIRED,
    }


@pytest.mark.parametrize(("current", "target"), FORBIDDEN, ids=lambda s: str(s))
def test_every_move_outside_the_table_is_refused(current: OrderStatus, target: OrderStatus) -> None:
    order = in_status(current)
    before = snapshot(order)

    with pytest.raises(InvalidTransition) as raised:
        order._move_to(target)

    assert (raised.value.current, raised.value.target) == (current, target)
    assert snapshot(order) == before


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED), ids=lambda s: str(s))
def test_every_move_in_the_table_is_taken(current: OrderStatus, target: OrderStatus) -> None:
    order = in_status(current)
    order._move_to(target)
    assert order.status is target


# Each public reaction to another service's event, and the status it aims for.
REACTIONS: dict[str, tuple[Callable[[Order], None], OrderStatus]] = {
    "stock_reserved": (lambda o: o.stock_reserved(HOLD_EXPIRES), S.RESERVED),
    "stock_rejected": (lambda o: o.stock_rejected("sold out"), S.CANCELLED),
    "payment_succeeded": (lambda o: o.payment_succeeded(), S.CONFIRMED),
    "payment_failed": (lambda o: o.payment_failed("declined"), S.CANCELLED),
    "hold_expired": (lambda o: o.hold_expired(), S.EXPIRED),
}
# Payments and holds may report after the order is final: those are ignored, not errors.
LATE_TOLERANT = {"payment_succeeded", "payment_failed", "hold_expired"}


@pytest.mark.parametrize("reaction", sorted(REACTIONS))
@pytest.mark.parametrize("current", list(OrderStatus), ids=str)
def test_reactions_follow_the_table(current: OrderStatus, reaction: str) -> None:
    act, target = REACTIONS[reaction]
    order = in_status(current)
    before = snapshot(order)

    if current.is_final and reaction in LATE_TOLERANT:
        act(order)
        assert snapshot(order) == before
    elif (current, target) in ALLOWED:
        act(order)
        assert order.status is target
        # Reserving an order placed without a token emits nothing; every other move does.
        assert bool(order.events) is (reaction != "stock_reserved")
    else:
        with pytest.raises(InvalidTransition):
            act(order)
        assert snapshot(order) == before


# -- the events each transition emits ------------------------------------------------------


def test_place_emits_order_placed_with_lines_and_exact_total() -> None:
    order = Order.place("cust-1", LINES, "EUR", order_id="order-1")

    assert order.status is S.PENDING
    assert order.created_at == order.updated_at
    assert order.created_at.tzinfo is not None
    assert order.events == [
        events.OrderPlaced(
            order_id="order-1",
            customer_id="cust-1",
            lines=(
                events.OrderLine(product_id="beans", quantity=3, unit_price=Decimal("0.10")),
                events.OrderLine(product_id="kettle", quantity=1, unit_price=Decimal("19.99")),
            ),
            total=Decimal("20.29"),
            currency="EUR",
        )
    ]


def test_place_without_an_id_gets_a_fresh_one() -> None:
    first = Order.place("c", LINES, "EUR")
    second = Order.place("c", LINES, "EUR")
    assert first.id != second.id
    assert first.events[0].order_id == first.id  # type: ignore[attr-defined]


def test_place_refuses_an_order_without_lines() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        Order.place("cust-1", [], "EUR")


def test_stock_reserved_with_a_token_requests_payment() -> None:
    order = placed(payment_token="tok_visa")

    order.stock_reserved(HOLD_EXPIRES, sellers=SELLERS)

    assert order.status is S.RESERVED
    assert order.hold_expires_at == HOLD_EXPIRES
    assert order.payment_requested is True
    assert order.events == [
        events.PaymentRequested(
            order_id="order-1",
            customer_id="cust-1",
            amount=Decimal("20.29"),
            currency="EUR",
            payment_token="tok_visa",
            shares=(
                events.PaymentShare(
                    store_id="roastery", seller_id="seller-1", amount=Decimal("0.30")
                ),
                events.PaymentShare(store_id="hardware", seller_id=None, amount=Decimal("19.99")),
            ),
        )
    ]


def test_stock_reserved_without_a_token_waits_for_the_buyer() -> None:
    order = placed()
    order.stock_reserved(HOLD_EXPIRES)

    assert order.status is S.RESERVED
    assert order.hold_expires_at == HOLD_EXPIRES
    assert order.payment_requested is False
    assert order.events == []


def test_payment_succeeded_confirms() -> None:
    order = in_status(S.RESERVED, payment_token="tok_visa")

    order.payment_succeeded()

    assert order.status is S.CONFIRMED
    assert order.events == [
        events.OrderConfirmed(
            order_id="order-1",
            customer_id="cust-1",
            total=Decimal("20.29"),
            currency="EUR",
            lines=order.event_lines(),
        )
    ]
    assert [line.product_id for line in order.events[0].lines] == [
        line.product_id for line in order.lines
    ]


def test_stock_rejected_cancels_with_the_reason() -> None:
    order = placed()
    order.stock_rejected("beans: 3 wanted, 1 available")

    reason = "out of stock: beans: 3 wanted, 1 available"
    assert order.status is S.CANCELLED
    assert order.cancel_reason == reason
    assert order.events == [
        events.OrderCancelled(order_id="order-1", customer_id="cust-1", reason=reason)
    ]


def test_payment_failed_cancels_with_the_reason() -> None:
    order = in_status(S.RESERVED, payment_token="tok_chargeDeclined")
    order.payment_failed("card declined")

    reason = "payment failed: card declined"
    assert order.status is S.CANCELLED
    assert order.cancel_reason == reason
    assert order.events == [
        events.OrderCancelled(order_id="order-1", customer_id="cust-1", reason=reason)
    ]


def test_hold_expired_expires() -> None:
    order = in_status(S.RESERVED)
    order.hold_expired()

    assert order.status is S.EXPIRED
    assert order.cancel_reason is None
    assert order.events == [events.OrderExpired(order_id="order-1", customer_id="cust-1")]


@pytest.mark.parametrize("final", [S.CONFIRMED, S.CANCELLED, S.EXPIRED], ids=str)
@pytest.mark.parametrize("late", sorted(LATE_TOLERANT))
def test_late_events_on_final_orders_change_nothing(final: OrderStatus, late: str) -> None:
    order = in_status(final, payment_token="tok_visa" if final is S.CONFIRMED else None)
    before = snapshot(order)

    REACTIONS[late][0](order)

    assert snapshot(order) == before
    assert order.events == []


def test_a_paid_order_whose_hold_expired_stays_expired() -> None:
    """The race of the docstring: payment succeeds after the hold ran out."""
    order = in_status(S.RESERVED, payment_token="tok_visa")
    order.hold_expired()
    order.events.clear()

    order.payment_succeeded()

    assert order.status is S.EXPIRED
    assert order.events == []


# -- paying an order placed without a token ------------------------------------------------


def test_pay_a_reserved_order_requests_payment_once() -> None:
    order = in_status(S.RESERVED)

    order.pay("tok_visa")

    assert order.status is S.RESERVED
    assert order.payment_token == "tok_visa"
    assert order.payment_requested is True
    assert order.events == [
        events.PaymentRequested(
            order_id="order-1",
            customer_id="cust-1",
            amount=Decimal("20.29"),
            currency="EUR",
            payment_token="tok_visa",
            # A seller orders never learned: the whole amount, for no store.
            shares=(events.PaymentShare(store_id=None, amount=Decimal("20.29")),),
        )
    ]

    order.events.clear()
    before = snapshot(order)
    with pytest.raises(PaymentNotAllowed, match="already being paid"):
        order.pay("tok_other")
    assert snapshot(order) == before


def test_pay_refused_when_the_reservation_already_requested_payment() -> None:
    order = in_status(S.RESERVED, payment_token="tok_visa")
    before = snapshot(order)

    with pytest.raises(PaymentNotAllowed):
        order.pay("tok_other")

    assert snapshot(order) == before


@pytest.mark.parametrize(
    "status", [S.PENDING, S.CONFIRMED, S.CANCELLED, S.EXPIRED], ids=lambda s: str(s)
)
def test_pay_refused_unless_reserved(status: OrderStatus) -> None:
    order = in_status(status)
    before = snapshot(order)

    with pytest.raises(PaymentNotAllowed, match="not RESERVED"):
        order.pay("tok_visa")

    assert snapshot(order) == before


# -- money ---------------------------------------------------------------------------------


def test_totals_are_exact_decimals() -> None:
    lines = [Line("a", 3, Decimal("0.1")), Line("b", 7, Decimal("0.07")), Line("c", 1, Decimal(0))]
    order = Order.place("c", lines, "EUR")

    assert isinstance(order.total, Decimal)
    assert order.total == Decimal("0.79")  # 0.3 + 0.49: no binary float anywhere
    assert str(order.total) == "0.79"
    assert [line.subtotal for line in order.lines] == [
        Decimal("0.3"),
        Decimal("0.49"),
        Decimal("0"),
    ]
    placed_event = order.events[0]
    assert isinstance(placed_event, events.OrderPlaced)
    assert placed_event.total == Decimal("0.79")
    assert isinstance(placed_event.total, Decimal)


def test_large_totals_keep_every_cent() -> None:
    order = Order.place("c", [Line("a", 10_000, Decimal("99999.99"))], "EUR")
    assert order.total == Decimal("999999900.00")
    assert order.total == Decimal("99999.99") * 10_000


def test_a_payments_shares_are_each_stores_goods_and_each_sessions_tickets() -> None:
    tickets = [
        TicketLine("session-1", "front", 2, Decimal("50.00")),
        TicketLine("session-1", "back", 1, Decimal("20.00")),
        TicketLine("session-2", "front", 1, Decimal("45.00")),
    ]
    order = Order.place("cust-1", LINES, "EUR", "tok_visa", order_id="o", tickets=tickets)
    sellers = {
        **SELLERS,
        "kettle": Seller("roastery", "seller-1"),
        "session-1": Seller("hall", "seller-2"),
        "session-2": Seller("hall", "seller-2"),
    }

    shares = order.shares(sellers)

    assert shares == (
        events.PaymentShare(store_id="roastery", seller_id="seller-1", amount=Decimal("20.29")),
        events.PaymentShare(
            store_id="hall", seller_id="seller-2", amount=Decimal("120.00"), session_id="session-1"
        ),
        events.PaymentShare(
            store_id="hall", seller_id="seller-2", amount=Decimal("45.00"), session_id="session-2"
        ),
    )
    assert sum(share.amount for share in shares) == order.total
