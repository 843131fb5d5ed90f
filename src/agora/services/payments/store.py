"""Payments' tables (one payment per order, and every attempt made at the provider) and the
query its routes read. Handlers and the processor write through `repository`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    func,
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
    # the cancelled ticket's session: its share gives the price back
    Column("session_id", String, nullable=True),
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

# What each store sells in a payment (`PaymentShare`), in minor units: the commission the
# platform keeps at the seller's rate when the payment was requested, and what of the share
# has been refunded.
payment_shares = Table(
    "payment_shares",
    metadata,
    Column("payment_id", String(36), ForeignKey("payments.id"), nullable=False),
    Column("share_no", Integer, nullable=False),
    Column("store_id", String, nullable=True),
    Column("seller_id", String, nullable=True),
    Column("session_id", String, nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("commission", BigInteger, nullable=False),
    Column("rate", DecimalText, nullable=False),
    Column("refunded", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("payment_id", "share_no"),
)

# Read models of other contexts' events: each seller's plan (identity), each store's seller
# (catalog).
seller_plans = Table(
    "seller_plans",
    metadata,
    Column("seller_id", String, primary_key=True),
    Column("plan", String(16), nullable=False),
)
store_owners = Table(
    "store_owners",
    metadata,
    Column("store_id", String, primary_key=True),
    Column("seller_id", String, nullable=True),
)

# The double-entry ledger, append-only: a posting's entries sum to zero per currency, amounts
# in minor units, positive on the debit side (`ledger.py` names the accounts). `key` makes a
# posting once: "capture:<payment>", "fee:<payment>", "refund:<payment>", "refund:<partial>".
ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key", String, nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("payment_id", String(36), nullable=True, index=True),
    Column("order_id", String(36), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("posting_id", String(36), ForeignKey("ledger_postings.id"), nullable=False),
    Column("account", String, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_ledger_entries_account", ledger_entries.c.account, ledger_entries.c.id)
Index("ix_ledger_entries_posting", ledger_entries.c.posting_id)
# Each account's balance per currency: the sum of its entries, kept with every posting.
ledger_balances = Table(
    "ledger_balances",
    metadata,
    Column("account", String, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "currency"),
)

# Payouts of a store's available balance to its seller, once per (store, key). PAYING is the
# provider's turn; PAID and FAILED are settled.
PAYING, PAID = "PAYING", "PAID"
payouts = Table(
    "payouts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("store_id", String, nullable=False),
    Column("key", String, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("requested_by", String, nullable=False),
    Column("state", String(10), nullable=False),
    Column("transfer_id", String, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("store_id", "key", name="uq_payouts_store_key"),
)
Index("ix_payouts_due", payouts.c.state, payouts.c.next_attempt_at)
Index("ix_payouts_store", payouts.c.store_id, payouts.c.created_at)

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


# -- the ledger's reads --------------------------------------------------------------------


async def owner_of_store(conn: AsyncConnection, store_id: str) -> tuple[bool, str | None]:
    """Whether payments knows `store_id` (it opened, or has sold), and its seller."""
    row = (await conn.execute(STORE_OWNER, {"store": store_id})).first()
    if row is not None:
        return True, row.seller_id
    sold = await conn.scalar(ACCOUNT_USED, {"account": f"store:{store_id}"})
    return sold is not None, None


async def balances(
    conn: AsyncConnection, account: str, matured_before: dt.datetime
) -> list[tuple[str, int, int]]:
    """`account`'s balance per currency, and the sum of its entries made before
    `matured_before` and of every debit whenever made (a refund or payout takes from what is
    available at once): `(currency, balance, matured)`, by currency."""
    rows = await conn.execute(BALANCES, {"account": account, "before": matured_before})
    return [(row.currency, int(row.balance), int(row.matured)) for row in rows]


async def entries_of(conn: AsyncConnection, account: str, *, after: int, limit: int) -> list[Any]:
    """`account`'s entries after the entry `after` (0: from the first), oldest first, with
    their posting's kind and order."""
    return list(
        (await conn.execute(ENTRIES_OF, {"account": account, "after": after, "limit": limit})).all()
    )


async def postings_of(conn: AsyncConnection, payment_id: str) -> list[Any]:
    """The payment's postings' entries, in the order they were posted."""
    return list((await conn.execute(POSTINGS_OF, {"payment": payment_id})).all())


async def platform_balances(conn: AsyncConnection) -> list[Row[Any]]:
    """Every account's balance but the stores', by account and currency."""
    return list((await conn.execute(PLATFORM_BALANCES)).all())


STORE_OWNER = select(store_owners.c.seller_id).where(store_owners.c.store_id == bindparam("store"))
ACCOUNT_USED = (
    select(ledger_entries.c.id).where(ledger_entries.c.account == bindparam("account")).limit(1)
)
BALANCES = (
    select(
        ledger_entries.c.currency,
        func.sum(ledger_entries.c.amount).label("balance"),
        func.coalesce(
            func.sum(
                case(
                    (
                        (ledger_entries.c.created_at < bindparam("before"))
                        | (ledger_entries.c.amount > 0),
                        ledger_entries.c.amount,
                    )
                )
            ),
            0,
        ).label("matured"),
    )
    .where(ledger_entries.c.account == bindparam("account"))
    .group_by(ledger_entries.c.currency)
    .order_by(ledger_entries.c.currency)
)
ENTRIES_OF = (
    select(
        ledger_entries.c.id,
        ledger_entries.c.currency,
        ledger_entries.c.amount,
        ledger_entries.c.created_at,
        ledger_postings.c.kind,
        ledger_postings.c.order_id,
    )
    .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id)
    .where(
        ledger_entries.c.account == bindparam("account"), ledger_entries.c.id > bindparam("after")
    )
    .order_by(ledger_entries.c.id)
    .limit(bindparam("limit"))
)
POSTINGS_OF = (
    select(
        ledger_postings.c.id,
        ledger_postings.c.kind,
        ledger_postings.c.currency,
        ledger_postings.c.created_at,
        ledger_entries.c.account,
        ledger_entries.c.amount,
    )
    .join(ledger_entries, ledger_entries.c.posting_id == ledger_postings.c.id)
    .where(ledger_postings.c.payment_id == bindparam("payment"))
    .order_by(ledger_entries.c.id)
)
PLATFORM_BALANCES = (
    select(ledger_balances)
    .where(ledger_balances.c.account.not_like("store:%"))
    .order_by(ledger_balances.c.account, ledger_balances.c.currency)
)


async def payouts_of(conn: AsyncConnection, store_id: str, *, limit: int) -> list[Row[Any]]:
    """The store's payouts, newest first."""
    return list((await conn.execute(PAYOUTS_OF, {"store": store_id, "limit": limit})).all())


PAYOUTS_OF = (
    select(payouts)
    .where(payouts.c.store_id == bindparam("store"))
    .order_by(payouts.c.created_at.desc(), payouts.c.id)
    .limit(bindparam("limit"))
)


async def owed_balances(conn: AsyncConnection) -> list[tuple[str, str]]:
    """`(store_id, currency)` of every store the platform owes money to, by store."""
    rows = await conn.execute(OWED_BALANCES)
    return [(row.account.removeprefix("store:"), row.currency) for row in rows]


OWED_BALANCES = (
    select(ledger_balances.c.account, ledger_balances.c.currency)
    .where(ledger_balances.c.account.like("store:%"), ledger_balances.c.balance < 0)
    .order_by(ledger_balances.c.account, ledger_balances.c.currency)
)
