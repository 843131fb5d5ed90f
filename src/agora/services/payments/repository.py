"""How payments' handlers and processor change its rows: the repository of one unit of work.
Tests hold them to it with an in-memory twin."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork, insert_new, new_id
from agora.services.payments.ledger import Entry, Share
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    PAYING,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    WORK_STATES,
    attempts,
    ledger_balances,
    ledger_entries,
    ledger_postings,
    partial_refunds,
    payment_shares,
    payments,
    payouts,
    seller_plans,
    store_owners,
)

__all__ = [
    "DuePayment",
    "DuePayout",
    "DueRefund",
    "Ledger",
    "NewShare",
    "PaymentsRepository",
    "PaymentsUnitOfWork",
    "Payouts",
    "StoredShare",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class DuePayment:
    """A payment that is the provider's turn (CHARGING or REFUNDING), as the processor claimed
    it."""

    id: str
    order_id: str
    customer_id: str
    requested_by: str
    token: str
    amount: Decimal
    currency: str
    state: str
    attempts: int
    charge_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class DueRefund:
    """A partial refund that is the provider's turn, as the processor claimed it."""

    id: str
    payment_id: str
    order_id: str
    key: str
    session_id: str | None
    requested_by: str
    amount: Decimal
    currency: str
    charge_id: str
    attempts: int


async def _claim(
    conn: AsyncConnection,
    due: Select[Any],
    table: Table,
    now: dt.datetime,
    until: dt.datetime,
    limit: int,
) -> Sequence[Any]:
    """The rows of `table` that `due` finds due at `now` (at most `limit`; it skips rows other
    transactions hold), leased until `until`: not due again before then."""
    rows: Sequence[Any] = (await conn.execute(due, {"now": now, "limit": limit})).all()
    if rows:
        await conn.execute(
            update(table)
            .where(table.c.id.in_([row.id for row in rows]))
            .values(next_attempt_at=until)
        )
    return rows


class PaymentsRepository:
    """Payments and their attempts, in the unit of work's transaction. One payment per order."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        order_id: str,
        customer_id: str,
        amount: Decimal,
        currency: str,
        token: str,
        *,
        requested_by: str,
        now: dt.datetime,
    ) -> str | None:
        """A new payment of the order, to be charged from `now`: its id; None (and nothing
        changed) if the order has a payment already."""
        if await self._conn.scalar(PAYMENT_OF_ORDER, {"order": order_id}) is not None:
            return None
        payment_id = new_id()
        await self._conn.execute(
            NEW_PAYMENT,
            {
                "id": payment_id,
                "requested_by": requested_by,
                "order_id": order_id,
                "customer_id": customer_id,
                "amount": amount,
                "currency": currency,
                "token": token,
                "state": CHARGING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        return payment_id

    async def void(self, order_id: str, now: dt.datetime) -> None:
        """The order's payment, if not charged yet, never will be (CHARGING becomes VOIDED)."""
        await self._conn.execute(VOID, {"order": order_id, "now": now})

    async def refund(self, order_id: str, now: dt.datetime) -> bool:
        """The order's payment, if charged, is to be refunded from `now` (SUCCEEDED becomes
        REFUNDING); False if it was not charged."""
        result = await self._conn.execute(START_REFUND, {"order": order_id, "now": now})
        return bool(result.rowcount)

    async def claim_due(
        self, now: dt.datetime, until: dt.datetime, *, limit: int
    ) -> list[DuePayment]:
        """Up to `limit` payments that are the provider's turn at `now`, oldest due first,
        claimed until `until`: they are not due again before, and another transaction skips
        the rows this one holds."""
        rows = await _claim(self._conn, DUE, payments, now, until, limit)
        return [
            DuePayment(
                id=row.id,
                order_id=row.order_id,
                customer_id=row.customer_id,
                requested_by=row.requested_by,
                token=row.token,
                amount=row.amount,
                currency=row.currency,
                state=row.state,
                attempts=row.attempts,
                charge_id=row.charge_id,
            )
            for row in rows
        ]

    async def next_due(self) -> dt.datetime | None:
        """When the first payment that is the provider's turn is due; None if none is."""
        upcoming: dt.datetime | None = await self._conn.scalar(NEXT_DUE)
        return upcoming

    async def record_attempt(
        self, payment_id: str, kind: str, outcome: str, detail: str | None, at: dt.datetime
    ) -> str:
        """Record one attempt at the provider; returns the payment's state as it is now (it may
        have been voided while the provider was called)."""
        await self._conn.execute(
            NEW_ATTEMPT,
            {
                "id": new_id(),
                "payment_id": payment_id,
                "kind": kind,
                "outcome": outcome,
                "detail": detail,
                "at": at,
            },
        )
        return str(await self._conn.scalar(PAYMENT_STATE, {"payment": payment_id}))

    async def charged(
        self, payment_id: str, charge_id: str, state: str, *, attempts: int, now: dt.datetime
    ) -> None:
        """The provider charged the payment: it is `state` now (SUCCEEDED, or REFUNDING if it
        was voided meanwhile, refunded from `now`)."""
        await self._set(
            payment_id,
            charge_id=charge_id,
            state=state,
            next_attempt_at=now,
            attempts=attempts,
            updated_at=now,
        )

    async def retry(
        self,
        payment_id: str,
        at: dt.datetime,
        *,
        attempts: int,
        now: dt.datetime | None = None,
    ) -> None:
        """The provider failed transiently: try again at `at` (the payment is updated at `now`,
        if given)."""
        values: dict[str, object] = {"next_attempt_at": at, "attempts": attempts}
        if now is not None:
            values["updated_at"] = now
        await self._set(payment_id, **values)

    async def give_up(
        self, payment_id: str, state: str, reason: str, *, attempts: int, now: dt.datetime
    ) -> None:
        """No more attempts: the payment stays `state` (FAILED, or as it was if voided), for
        `reason`."""
        await self._set(
            payment_id, state=state, failure_reason=reason, attempts=attempts, updated_at=now
        )

    async def refunded(self, payment_id: str, refund_id: str, now: dt.datetime) -> None:
        """The provider refunded the payment's charge."""
        await self._set(payment_id, state=REFUNDED, refund_id=refund_id, updated_at=now)

    async def _set(self, payment_id: str, **values: object) -> None:
        await self._conn.execute(UPDATE_PAYMENT, {"payment": payment_id, **values})

    # -- partial refunds --------------------------------------------------------------------

    async def refund_part(
        self,
        order_id: str,
        key: str,
        amount: Decimal,
        requested_by: str,
        now: dt.datetime,
        *,
        session_id: str | None = None,
    ) -> bool:
        """Refund `amount` of the order's payment once per `key` (taken back first from the
        share of `session_id`), if it was charged, is not being refunded whole and has that
        much left to refund; False if nothing is to be done."""
        payment = (await self._conn.execute(CHARGED_PAYMENT, {"order": order_id})).first()
        if payment is None:
            return False
        asked = await self._conn.scalar(REFUNDS_ASKED, {"payment": payment.id, "key": key})
        if (asked or Decimal(0)) + amount > payment.amount:
            logger.warning(
                "refund %s of %s refused: order %s has less than that left", key, amount, order_id
            )
            return False
        result = await self._conn.execute(
            insert_new(partial_refunds, self._conn.dialect.name, partial_refunds.c.id),
            {
                "id": new_id(),
                "payment_id": payment.id,
                "key": key,
                "session_id": session_id,
                "amount": amount,
                "requested_by": requested_by,
                "state": REFUNDING,
                "refund_id": None,
                "failure_reason": None,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        return result.first() is not None

    async def claim_due_refunds(
        self, now: dt.datetime, until: dt.datetime, *, limit: int
    ) -> list[DueRefund]:
        """As `claim_due`, for partial refunds."""
        rows = await _claim(self._conn, DUE_REFUNDS, partial_refunds, now, until, limit)
        return [
            DueRefund(
                id=row.id,
                payment_id=row.payment_id,
                order_id=row.order_id,
                key=row.key,
                session_id=row.session_id,
                requested_by=row.requested_by,
                amount=row.amount,
                currency=row.currency,
                charge_id=row.charge_id,
                attempts=row.attempts,
            )
            for row in rows
        ]

    async def next_due_refund(self) -> dt.datetime | None:
        upcoming: dt.datetime | None = await self._conn.scalar(NEXT_DUE_REFUND)
        return upcoming

    async def settle_refund(
        self,
        refund_id: str,
        state: str,
        *,
        provider_refund_id: str | None,
        failure: str | None,
        attempts: int,
        next_attempt_at: dt.datetime,
        now: dt.datetime,
    ) -> None:
        await self._conn.execute(
            update(partial_refunds)
            .where(partial_refunds.c.id == refund_id)
            .values(
                state=state,
                refund_id=provider_refund_id,
                failure_reason=failure,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                updated_at=now,
            )
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NewShare:
    """A share of a new payment, with the seller it is charged commission for and the rate."""

    share: Share
    seller_id: str | None
    rate: Decimal


@dataclasses.dataclass(frozen=True, slots=True)
class StoredShare:
    share_no: int
    share: Share
    refunded: int


class Ledger:
    """The ledger's postings, the shares of payments, and what payments knows of sellers'
    plans and stores' owners, in the unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_shares(self, payment_id: str, shares: Sequence[NewShare]) -> None:
        await self._conn.execute(
            insert(payment_shares),
            [
                {
                    "payment_id": payment_id,
                    "share_no": number,
                    "store_id": new.share.store_id,
                    "seller_id": new.seller_id,
                    "session_id": new.share.session_id,
                    "amount": new.share.amount,
                    "commission": new.share.commission,
                    "rate": new.rate,
                    "refunded": 0,
                }
                for number, new in enumerate(shares)
            ],
        )

    async def shares_of(self, payment_id: str) -> list[StoredShare]:
        rows = await self._conn.execute(SHARES_OF, {"payment": payment_id})
        return [
            StoredShare(
                row.share_no,
                Share(row.store_id, row.amount, row.commission, row.session_id),
                row.refunded,
            )
            for row in rows
        ]

    async def add_refunded(self, payment_id: str, parts: Iterable[tuple[int, int]]) -> None:
        """Add each `(share_no, amount)` to what its share has had refunded."""
        for share_no, amount in parts:
            await self._conn.execute(
                ADD_REFUNDED, {"payment": payment_id, "share": share_no, "taken": amount}
            )

    async def post(
        self,
        key: str,
        kind: str,
        currency: str,
        entries: Sequence[Entry],
        *,
        payment_id: str | None,
        order_id: str | None,
        now: dt.datetime,
    ) -> bool:
        """Post `entries` once per `key`, and add them to their accounts' balances; False (and
        nothing written) if the key was posted before. A ValueError if they do not balance."""
        if sum(amount for _, amount in entries) != 0:
            raise ValueError(f"posting {key} does not balance: {list(entries)}")
        posting_id = new_id()
        inserted = await self._conn.execute(
            insert_new(ledger_postings, self._conn.dialect.name, ledger_postings.c.id),
            {
                "id": posting_id,
                "key": key,
                "kind": kind,
                "payment_id": payment_id,
                "order_id": order_id,
                "currency": currency,
                "created_at": now,
            },
        )
        if inserted.first() is None:
            return False
        # Accounts in one order: two transactions adding to the same balances never deadlock.
        ordered = sorted(entries)
        await self._conn.execute(
            insert(ledger_entries),
            [
                {
                    "posting_id": posting_id,
                    "account": account,
                    "currency": currency,
                    "amount": amount,
                    "created_at": now,
                }
                for account, amount in ordered
            ],
        )
        await self._conn.execute(
            _add_to_balance(self._conn.dialect.name),
            [
                {"account": account, "currency": currency, "balance": amount}
                for account, amount in ordered
            ],
        )
        return True

    async def set_plan(self, seller_id: str, plan: str) -> None:
        await self._conn.execute(
            _upsert(seller_plans, self._conn.dialect.name, "plan"),
            {"seller_id": seller_id, "plan": plan},
        )

    async def plans(self, seller_ids: Iterable[str]) -> dict[str, str]:
        rows = await self._conn.execute(PLANS, {"sellers": list(seller_ids)})
        return {row.seller_id: row.plan for row in rows}

    async def set_owner(self, store_id: str, seller_id: str | None) -> None:
        await self._conn.execute(
            _upsert(store_owners, self._conn.dialect.name, "seller_id"),
            {"store_id": store_id, "seller_id": seller_id},
        )


def _upsert(table: Any, dialect: str, column: str) -> Insert:
    """`INSERT … ON CONFLICT (key) DO UPDATE SET column = the new value`."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={column: statement.excluded[column]},
    )


def _add_to_balance(dialect: str) -> Insert:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ledger_balances)
    return statement.on_conflict_do_update(
        index_elements=[ledger_balances.c.account, ledger_balances.c.currency],
        set_={"balance": ledger_balances.c.balance + statement.excluded.balance},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class DuePayout:
    """A payout that is the provider's turn, as the processor claimed it."""

    id: str
    store_id: str
    seller_id: str | None
    currency: str
    amount: int
    requested_by: str
    attempts: int


class Payouts:
    """Payouts of stores' balances, in the unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, store_id: str, key: str) -> Any:
        """The store's payout asked for with `key`, or None."""
        return (await self._conn.execute(PAYOUT_BY_KEY, {"store": store_id, "key": key})).first()

    async def lock_balance(self, account: str, currency: str) -> None:
        """Hold `account`'s balance in `currency` until the transaction ends: another payout of
        it waits (PostgreSQL; SQLite has one writer at a time anyway)."""
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(LOCK_BALANCE, {"account": account, "currency": currency})

    async def add(
        self,
        store_id: str,
        key: str,
        currency: str,
        amount: int,
        *,
        requested_by: str,
        now: dt.datetime,
    ) -> str:
        payout_id = new_id()
        await self._conn.execute(
            insert(payouts),
            {
                "id": payout_id,
                "store_id": store_id,
                "key": key,
                "currency": currency,
                "amount": amount,
                "requested_by": requested_by,
                "state": PAYING,
                "transfer_id": None,
                "failure_reason": None,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        return payout_id

    async def claim_due(
        self, now: dt.datetime, until: dt.datetime, *, limit: int
    ) -> list[DuePayout]:
        """As `PaymentsRepository.claim_due`, for payouts."""
        rows = await _claim(self._conn, DUE_PAYOUTS, payouts, now, until, limit)
        return [
            DuePayout(
                id=row.id,
                store_id=row.store_id,
                seller_id=row.seller_id,
                currency=row.currency,
                amount=row.amount,
                requested_by=row.requested_by,
                attempts=row.attempts,
            )
            for row in rows
        ]

    async def next_due(self) -> dt.datetime | None:
        upcoming: dt.datetime | None = await self._conn.scalar(NEXT_DUE_PAYOUT)
        return upcoming

    async def settle(
        self,
        payout_id: str,
        state: str,
        *,
        transfer_id: str | None,
        failure: str | None,
        attempts: int,
        next_attempt_at: dt.datetime,
        now: dt.datetime,
    ) -> None:
        await self._conn.execute(
            update(payouts)
            .where(payouts.c.id == payout_id)
            .values(
                state=state,
                transfer_id=transfer_id,
                failure_reason=failure,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                updated_at=now,
            )
        )


class PaymentsUnitOfWork(UnitOfWork):
    @property
    def payments(self) -> PaymentsRepository:
        return PaymentsRepository(self.conn)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.conn)

    @property
    def payouts(self) -> Payouts:
        return Payouts(self.conn)


# Prepared statements (docs/architecture.md): every payment runs some of them.
PAYMENT_OF_ORDER = select(payments.c.id).where(payments.c.order_id == bindparam("order"))
NEW_PAYMENT = insert(payments)
VOID = (
    update(payments)
    .where(payments.c.order_id == bindparam("order"), payments.c.state == CHARGING)
    .values(state=VOIDED, updated_at=bindparam("now"))
)
START_REFUND = (
    update(payments)
    .where(payments.c.order_id == bindparam("order"), payments.c.state == SUCCEEDED)
    .values(state=REFUNDING, next_attempt_at=bindparam("now"), updated_at=bindparam("now"))
)
UPDATE_PAYMENT = update(payments).where(payments.c.id == bindparam("payment"))  # SET: the rest
NEW_ATTEMPT = insert(attempts)
PAYMENT_STATE = select(payments.c.state).where(payments.c.id == bindparam("payment"))
DUE = (
    select(payments)
    .where(payments.c.state.in_(WORK_STATES), payments.c.next_attempt_at <= bindparam("now"))
    .order_by(payments.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)  # replicas' processors share the work
)
NEXT_DUE = (
    select(payments.c.next_attempt_at)
    .where(payments.c.state.in_(WORK_STATES))
    .order_by(payments.c.next_attempt_at)
    .limit(1)
)
CHARGED_PAYMENT = select(payments.c.id, payments.c.amount).where(
    payments.c.order_id == bindparam("order"),
    payments.c.state == SUCCEEDED,
    payments.c.charge_id.is_not(None),
)
REFUNDS_ASKED = select(func.sum(partial_refunds.c.amount)).where(
    partial_refunds.c.payment_id == bindparam("payment"),
    partial_refunds.c.state != FAILED,
    partial_refunds.c.key != bindparam("key"),
)
DUE_REFUNDS = (
    select(
        partial_refunds,
        payments.c.order_id,
        payments.c.currency,
        payments.c.charge_id,
    )
    .join(payments, payments.c.id == partial_refunds.c.payment_id)
    .where(
        partial_refunds.c.state == REFUNDING,
        partial_refunds.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(partial_refunds.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(of=partial_refunds, skip_locked=True)
)
SHARES_OF = (
    select(payment_shares)
    .where(payment_shares.c.payment_id == bindparam("payment"))
    .order_by(payment_shares.c.share_no)
)
ADD_REFUNDED = (
    update(payment_shares)
    .where(
        payment_shares.c.payment_id == bindparam("payment"),
        payment_shares.c.share_no == bindparam("share"),
    )
    .values(refunded=payment_shares.c.refunded + bindparam("taken"))
)
PLANS = select(seller_plans).where(
    seller_plans.c.seller_id.in_(bindparam("sellers", expanding=True))
)
PAYOUT_BY_KEY = select(payouts).where(
    payouts.c.store_id == bindparam("store"), payouts.c.key == bindparam("key")
)
LOCK_BALANCE = (
    select(ledger_balances.c.balance)
    .where(
        ledger_balances.c.account == bindparam("account"),
        ledger_balances.c.currency == bindparam("currency"),
    )
    .with_for_update()
)
DUE_PAYOUTS = (
    select(payouts, store_owners.c.seller_id)
    .outerjoin(store_owners, store_owners.c.store_id == payouts.c.store_id)
    .where(payouts.c.state == PAYING, payouts.c.next_attempt_at <= bindparam("now"))
    .order_by(payouts.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(of=payouts, skip_locked=True)
)
NEXT_DUE_PAYOUT = (
    select(payouts.c.next_attempt_at)
    .where(payouts.c.state == PAYING)
    .order_by(payouts.c.next_attempt_at)
    .limit(1)
)
NEXT_DUE_REFUND = (
    select(partial_refunds.c.next_attempt_at)
    .where(partial_refunds.c.state == REFUNDING)
    .order_by(partial_refunds.c.next_attempt_at)
    .limit(1)
)
