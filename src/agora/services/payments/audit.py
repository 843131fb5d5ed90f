"""Payments' invariants over its own tables, read-only (`agora check`): a payment captured at
most once, and settled as its attempts say; the ledger's (`agora ledger check`, and part of
`agora check`): every posting balances, every charged payment has exactly one capture, every
provider refund and payout its postings, shares add up to their payment, balances to their
entries; and the
facts the checks across services need (each order's payment).

Payments charged before payments kept a ledger (no shares) are not in it and are left out."""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.audit import Verdict, verdict
from agora.services.payments.ledger import CLEARING, to_minor
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    PAID,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    attempts,
    ledger_balances,
    ledger_entries,
    ledger_postings,
    partial_refunds,
    payment_shares,
    payments,
    payouts,
)

__all__ = ["OrderPayment", "invariants", "ledger_invariants", "payments_by_order"]

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
        ),
        *await ledger_invariants(conn),
    ]


async def ledger_invariants(conn: AsyncConnection) -> list[Verdict]:
    """The ledger against itself and against the payments it records."""
    sums: dict[str, int] = {}
    clearing: dict[str, int] = {}
    for posting_id, account, amount in await conn.execute(
        select(ledger_entries.c.posting_id, ledger_entries.c.account, ledger_entries.c.amount)
    ):
        sums[posting_id] = sums.get(posting_id, 0) + int(amount)
        if account == CLEARING:
            clearing[posting_id] = clearing.get(posting_id, 0) + int(amount)
    postings = (await conn.execute(select(ledger_postings))).all()
    by_key = {row.key: row for row in postings}
    shares: dict[str, tuple[int, bool]] = {}  # payment → (sum of shares, any over-refunded)
    for row in await conn.execute(select(payment_shares)):
        total, over = shares.get(row.payment_id, (0, False))
        shares[row.payment_id] = (total + int(row.amount), over or row.refunded > row.amount)
    booked = (
        await conn.execute(
            select(payments).where(payments.c.id.in_(select(payment_shares.c.payment_id)))
        )
    ).all()
    charged = [row for row in booked if row.charge_id is not None]

    def capture_wrong(row: Any) -> bool:
        capture = by_key.get(f"capture:{row.id}")
        amount = to_minor(row.amount, row.currency)
        return capture is None or clearing.get(capture.id) != amount

    refunds = [row for row in booked if row.state == REFUNDED]
    parts = (
        await conn.execute(select(partial_refunds).where(partial_refunds.c.state == REFUNDED))
    ).all()
    parts = [part for part in parts if part.payment_id in shares]
    refund_keys = {f"refund:{row.id}" for row in refunds} | {f"refund:{p.id}" for p in parts}
    stray = [
        row.key
        for row in postings
        if (row.kind == "refund" and row.key not in refund_keys)
        or (row.kind == "capture" and row.payment_id not in {c.id for c in charged})
    ]
    kept = {
        (row.account, row.currency): int(row.balance)
        for row in await conn.execute(select(ledger_balances))
    }
    summed = {
        (account, currency): int(total)
        for account, currency, total in await conn.execute(
            select(
                ledger_entries.c.account,
                ledger_entries.c.currency,
                func.sum(ledger_entries.c.amount),
            ).group_by(ledger_entries.c.account, ledger_entries.c.currency)
        )
    }
    sent = {FAILED: "failed", PAID: "sent"}
    paid_out = (await conn.execute(select(payouts))).all()
    payout_keys = {f"payout:{row.id}" for row in paid_out} | {
        f"payout-{sent[row.state]}:{row.id}" for row in paid_out if row.state in sent
    }
    payout_postings = {row.key for row in postings if row.kind == "payout"}
    scope = "payments ledger"
    return [
        verdict(
            "postings balance",
            scope,
            checked=len(postings),
            noun="postings",
            offenders=[row.key for row in postings if sums.get(row.id, 1) != 0],
            why="whose entries do not sum to zero (or that have none)",
        ),
        verdict(
            "one capture posting per charge",
            scope,
            checked=len(charged),
            noun="charged payments",
            offenders=[row.id for row in charged if capture_wrong(row)],
            why="without a capture posting of the amount charged",
        ),
        verdict(
            "refunds posted",
            scope,
            checked=len(refund_keys),
            noun="provider refunds",
            offenders=sorted((refund_keys - set(by_key)) | set(stray)),
            why="without their posting, or postings without a capture or refund",
        ),
        verdict(
            "payouts posted",
            scope,
            checked=len(paid_out),
            noun="payouts",
            offenders=sorted(payout_keys ^ payout_postings),
            why="without their postings (asked, and sent or failed), or postings without them",
        ),
        verdict(
            "shares add up",
            scope,
            checked=len(booked),
            noun="payments in the ledger",
            offenders=[
                row.id
                for row in booked
                if shares[row.id][0] != to_minor(row.amount, row.currency) or shares[row.id][1]
            ],
            why="whose shares do not add up to the amount, or refunded more than a share",
        ),
        verdict(
            "balances are their entries",
            scope,
            checked=len(summed),
            noun="accounts",
            offenders=[
                f"{account}/{currency}"
                for account, currency in sorted(set(kept) | set(summed))
                if kept.get((account, currency)) != summed.get((account, currency))
            ],
            why="whose balance is not the sum of their entries",
        ),
    ]


async def _captures(conn: AsyncConnection) -> Counter[str]:
    """Successful charges per payment id."""
    rows = await conn.execute(
        select(attempts.c.payment_id, func.count())
        .where(attempts.c.kind == "charge", attempts.c.outcome == "succeeded")
        .group_by(attempts.c.payment_id)
    )
    return Counter({payment_id: int(count) for payment_id, count in rows})
