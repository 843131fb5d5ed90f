"""The checks across services of `agora check`, on the facts the services' audit modules give:
which payments and holds each order's ending allows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agora.audit import verdict
from agora.cli.check import as_table, orders_against_inventory, orders_against_payments
from agora.services.orders.audit import FinalOrder
from agora.services.orders.domain import OrderStatus
from agora.services.payments.audit import OrderPayment

CONFIRMED, CANCELLED, EXPIRED = OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED


def order(status: OrderStatus, total: str = "10.00") -> FinalOrder:
    return FinalOrder(f"order-{status.value.lower()}", status, Decimal(total), "EUR")


def payment(
    state: str, captures: int, amount: str = "10.00", currency: str = "EUR"
) -> OrderPayment:
    return OrderPayment("pay", state, Decimal(amount), currency, captures, state == "REFUNDED")


def broken(final: FinalOrder, paid: OrderPayment | None) -> set[str]:
    verdicts = orders_against_payments([final], {} if paid is None else {final.id: paid})
    return {v.name for v in verdicts if not v.ok}


@pytest.mark.parametrize(
    ("final", "paid", "violated"),
    [
        (order(CONFIRMED), payment("SUCCEEDED", 1), set()),
        (order(CONFIRMED), None, {"confirmed orders paid"}),
        (order(CONFIRMED), payment("FAILED", 0), {"confirmed orders paid"}),
        (order(CONFIRMED), payment("REFUNDED", 1), {"confirmed orders paid"}),
        (order(CANCELLED), None, set()),
        (order(CANCELLED), payment("FAILED", 0), set()),
        (order(EXPIRED), payment("VOIDED", 0), set()),
        (order(EXPIRED), payment("REFUNDED", 1), set()),
        (order(EXPIRED), payment("REFUNDING", 1), {"ended orders not charged"}),
        (order(CANCELLED), payment("SUCCEEDED", 1), {"ended orders not charged"}),
        (order(CONFIRMED), payment("SUCCEEDED", 1, amount="9.99"), {"payments match totals"}),
        (order(CONFIRMED), payment("SUCCEEDED", 1, currency="USD"), {"payments match totals"}),
        (order(CANCELLED), payment("FAILED", 0, amount="1.00"), {"payments match totals"}),
    ],
)
def test_what_an_ending_allows_of_its_payment(
    final: FinalOrder, paid: OrderPayment | None, violated: set[str]
) -> None:
    assert broken(final, paid) == violated


@pytest.mark.parametrize(
    ("final", "states", "follows"),
    [
        (order(CONFIRMED), {"SOLD"}, True),
        (order(CONFIRMED), {"SOLD", "RELEASED"}, True),  # a ticket cancelled since
        (order(CONFIRMED), {"SOLD", "HELD"}, False),
        (order(CONFIRMED), set(), False),
        (order(CANCELLED), set(), True),  # refused: nothing was held
        (order(EXPIRED), {"RELEASED"}, True),
        (order(EXPIRED), {"HELD"}, False),
        (order(CANCELLED), {"RELEASED", "SOLD"}, False),
    ],
)
def test_what_an_ending_allows_of_its_holds(
    final: FinalOrder, states: set[str], follows: bool
) -> None:
    held = {final.id: states} if states else {}
    assert orders_against_inventory([final], held).ok is follows


def test_a_verdict_names_the_first_offenders_and_counts_them_all() -> None:
    judged = verdict(
        "stock conserved",
        "inventory",
        checked=10,
        noun="products",
        offenders=[f"p{n}" for n in range(7, 0, -1)],
        why="off",
    )
    assert not judged.ok
    assert judged.detail == "7 of 10 products off: p1, p2, p3, p4, p5, …"
    assert judged.offenders == ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
    assert verdict("stock conserved", "inventory", checked=10, noun="products", offenders=[]).ok


def test_the_table_has_a_row_per_invariant_its_columns_aligned() -> None:
    held = verdict("seats held once", "inventory", checked=3, noun="seats", offenders=[])
    broken = verdict(
        "confirmed orders paid",
        "orders+payments",
        checked=2,
        noun="confirmed orders",
        offenders=["o1"],
        why="without a payment that succeeded",
    )
    assert as_table([held, broken]).splitlines() == [
        "invariant              scope            status    detail",
        "seats held once        inventory        OK        3 seats",
        "confirmed orders paid  orders+payments  VIOLATED  1 of 2 confirmed orders without a "
        "payment that succeeded: o1",
    ]
