"""Payments' values, without I/O: a payment of an order and its attempts at the provider."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from agora.problems import NotFound

__all__ = ["Attempt", "Payment", "PaymentNotFound"]


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    kind: str
    outcome: str
    detail: str | None
    at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Payment:
    id: str
    order_id: str
    customer_id: str | None
    amount: Decimal
    currency: str
    state: str
    failure_reason: str | None
    attempts: tuple[Attempt, ...]
    refunded: Decimal = Decimal(0)


class PaymentNotFound(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            "payment-not-found", "Payment not found", f"no payment for order {order_id}"
        )
