"""Payments' invariants over its own tables, read-only (`agora check`): a payment captured at
most once, and settled as its attempts say; and the facts the checks across services need
(each order's payment).

The ledger's balance belongs here once payments keeps a ledger: one more verdict of
`invariants`, over the ledger's own tables."""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.audit import Verdict, verdict
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    attempts,
    payments,
)

__all__ = ["OrderPayment", "invariants", "payments_by_order"]

SCOPE = "payments"

CAPTURES = {CHARGING: 0, FAILED: 0, VOIDED: 0, SUCCEEDED: 1, REFUNDING: 1, REFUNDED: 1}
"""How many successful charges a payment in each state has had."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPayment:
    """An order's payment: its state, what it asked for, and how often the provider charged and
    refunded it in full (partial refunds, of cancelled tickets, leave it SUCCEEDED)."""

    id: str
    state: str
    amount: Decimal
    currency: str
    captures: int
    refunded: bool


async def payments_by_order(conn: AsyncConnection) -> dict[str, OrderPayment]:
    captures = await _captures(conn)
    return {
        row.order_id: OrderPayment(
            id=row.id,
            state=row.state,
            amount=row.amount,
            currency=row.currency,
            captures=captures[row.id],
            refunded=row.state == REFUNDED and row.refund_id is not None,
        )
        for row in await conn.execute(select(payments))
    }


async def invariants(conn: AsyncConnection) -> list[Verdict]:
    captures = await _captures(conn)
    rows = (await conn.execute(select(payments.c.id, payments.c.state))).all()
    offenders = [row.id for row in rows if captures[row.id] != CAPTURES.get(row.state, -1)]
    offenders += sorted(set(captures) - {row.id for row in rows})
    return [
        verdict(
            "one capture per payment",
            SCOPE,
            checked=len(rows),
            noun="payments",
            offenders=offenders,
            why="captured otherwise than their state says",
        )
    ]


async def _captures(conn: AsyncConnection) -> Counter[str]:
    """Successful charges per payment id."""
    rows = await conn.execute(
        select(attempts.c.payment_id, func.count())
        .where(attempts.c.kind == "charge", attempts.c.outcome == "succeeded")
        .group_by(attempts.c.payment_id)
    )
    return Counter({payment_id: int(count) for payment_id, count in rows})
