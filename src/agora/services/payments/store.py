"""Payments' tables (one payment per order, and every attempt made at the provider) and the
query its routes read. Handlers and the processor write through `repository`."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import DecimalText, UtcDateTime
from agora.services.payments.domain import Attempt, Payment

metadata = MetaData()

# Payment states. CHARGING and REFUNDING are the provider's turn; the rest are settled.
CHARGING, SUCCEEDED, FAILED, VOIDED, REFUNDING, REFUNDED = (
    "CHARGING",
    "SUCCEEDED",
    "FAILED",
    "VOIDED",
    "REFUNDING",
    "REFUNDED",
)
WORK_STATES = (CHARGING, REFUNDING)

payments = Table(
    "payments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), nullable=False, unique=True),
    Column("customer_id", String, nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("token", String, nullable=False),
    Column("requested_by", String(36), nullable=False),
    Column("state", String(10), nullable=False),
    Column("charge_id", String, nullable=True),
    Column("refund_id", String, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_payments_due", payments.c.state, payments.c.next_attempt_at)

attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("payment_id", String(36), ForeignKey("payments.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("detail", Text, nullable=True),
    Column("at", UtcDateTime, nullable=False),
)


# Refunds of part of a payment (a cancelled ticket's price), each once per `key`. REFUNDING is
# the provider's turn; REFUNDED and FAILED are settled.
partial_refunds = Table(
    "partial_refunds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("payment_id", String(36), ForeignKey("payments.id"), nullable=False),
    Column("key", String, nullable=False, unique=True),
    Column("amount", DecimalText, nullable=False),
    Column("requested_by", String(36), nullable=False),
    Column("state", String(10), nullable=False),
    Column("refund_id", String, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_partial_refunds_due", partial_refunds.c.state, partial_refunds.c.next_attempt_at)

# The routes' reads.
PAYMENT_BY_ORDER = select(payments).where(payments.c.order_id == bindparam("order"))
PARTIAL_REFUNDS_OF = select(partial_refunds.c.amount, partial_refunds.c.state).where(
    partial_refunds.c.payment_id == bindparam("payment")
)
ATTEMPTS_OF = (
    select(attempts)
    .where(attempts.c.payment_id == bindparam("payment"))
    .order_by(attempts.c.at, attempts.c.id)
)


async def payment_of_order(conn: AsyncConnection, order_id: str) -> Payment | None:
    row = (await conn.execute(PAYMENT_BY_ORDER, {"order": order_id})).first()
    if row is None:
        return None
    tries = (await conn.execute(ATTEMPTS_OF, {"payment": row.id})).all()
    parts = (await conn.execute(PARTIAL_REFUNDS_OF, {"payment": row.id})).all()
    if row.state == REFUNDED:
        refunded = row.amount
    else:
        refunded = sum((part.amount for part in parts if part.state == REFUNDED), Decimal(0))
    return Payment(
        id=row.id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        amount=row.amount,
        currency=row.currency,
        state=row.state,
        failure_reason=row.failure_reason,
        attempts=tuple(
            Attempt(kind=a.kind, outcome=a.outcome, detail=a.detail, at=a.at) for a in tries
        ),
        refunded=refunded,
    )
