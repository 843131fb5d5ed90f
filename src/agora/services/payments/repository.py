"""How payments' handlers and processor change its rows: the repository of one unit of work.
Tests hold them to it with an in-memory twin."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import UnitOfWork, insert_new, new_id
from agora.services.payments.store import (
    CHARGING,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    WORK_STATES,
    attempts,
    partial_refunds,
    payments,
)

__all__ = ["DuePayment", "DueRefund", "PaymentsRepository", "PaymentsUnitOfWork"]


@dataclasses.dataclass(frozen=True, slots=True)
class DuePayment:
    """A payment that is the provider's turn (CHARGING or REFUNDING), as the processor claimed
    it."""

    id: str
    order_id: str
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
    requested_by: str
    amount: Decimal
    currency: str
    charge_id: str
    attempts: int


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
    ) -> bool:
        """A new payment of the order, to be charged from `now`; False (and nothing changed) if
        the order has a payment already."""
        if await self._conn.scalar(PAYMENT_OF_ORDER, {"order": order_id}) is not None:
            return False
        await self._conn.execute(
            NEW_PAYMENT,
            {
                "id": new_id(),
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
        return True

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
        rows = (await self._conn.execute(DUE, {"now": now, "limit": limit})).all()
        if rows:
            await self._conn.execute(
                update(payments)
                .where(payments.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at=until)
            )
        return [
            DuePayment(
                id=row.id,
                order_id=row.order_id,
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
        self, order_id: str, key: str, amount: Decimal, requested_by: str, now: dt.datetime
    ) -> bool:
        """Refund `amount` of the order's payment once per `key`, if it was charged and is not
        being refunded whole; False if nothing is to be done."""
        payment = (await self._conn.execute(CHARGED_PAYMENT, {"order": order_id})).first()
        if payment is None:
            return False
        result = await self._conn.execute(
            insert_new(partial_refunds, self._conn.dialect.name, partial_refunds.c.id),
            {
                "id": new_id(),
                "payment_id": payment.id,
                "key": key,
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
        rows = (await self._conn.execute(DUE_REFUNDS, {"now": now, "limit": limit})).all()
        if rows:
            await self._conn.execute(
                update(partial_refunds)
                .where(partial_refunds.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at=until)
            )
        return [
            DueRefund(
                id=row.id,
                payment_id=row.payment_id,
                order_id=row.order_id,
                key=row.key,
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


class PaymentsUnitOfWork(UnitOfWork):
    @property
    def payments(self) -> PaymentsRepository:
        return PaymentsRepository(self.conn)


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
CHARGED_PAYMENT = select(payments.c.id).where(
    payments.c.order_id == bindparam("order"),
    payments.c.state == SUCCEEDED,
    payments.c.charge_id.is_not(None),
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
NEXT_DUE_REFUND = (
    select(partial_refunds.c.next_attempt_at)
    .where(partial_refunds.c.state == REFUNDING)
    .order_by(partial_refunds.c.next_attempt_at)
    .limit(1)
)
