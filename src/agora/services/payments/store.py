"""Payments' tables: one payment per order, and every attempt made at the provider."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from agora.messaging import DecimalText, UtcDateTime

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
