"""Payments' background work: the processor that takes each payment's turn at the provider."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row

from agora.contracts.payments import PaymentFailed, PaymentSucceeded, RefundIssued
from agora.messaging import Database, UnitOfWork, new_id, utcnow
from agora.services.payments.provider import CardProvider, Declined, ProviderUnavailable
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    NEW_ATTEMPT,
    PAYMENT_STATE,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    UPDATE_PAYMENT,
    WORK_STATES,
    payments,
)

__all__ = ["PaymentProcessor", "ProviderRetry"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderRetry:
    """Backoff between attempts at the provider after a transient failure."""

    attempts: int = 6
    first_delay: dt.timedelta = dt.timedelta(milliseconds=100)
    max_delay: dt.timedelta = dt.timedelta(seconds=30)
    # How long a claimed payment is left to the replica that claimed it.
    lease: dt.timedelta = dt.timedelta(seconds=30)

    def delay(self, attempt: int) -> dt.timedelta:
        delay: dt.timedelta = self.first_delay * 2 ** (attempt - 1)
        return min(self.max_delay, delay)


class PaymentProcessor:
    """Works through payments that are the provider's turn. The provider is called outside any
    transaction; each attempt and its outcome are then recorded in one."""

    def __init__(
        self,
        db: Database,
        unit_of_work: Callable[[], UnitOfWork],
        provider: CardProvider,
        retry: ProviderRetry,
        *,
        batch_size: int = 100,
    ) -> None:
        self._db = db
        self._unit_of_work = unit_of_work
        self._provider = provider
        self._retry = retry
        self._batch_size = batch_size

    async def step(self) -> float | None:
        now = utcnow()
        async with self._unit_of_work() as uow:
            # Claim due payments for a lease: another replica skips them, and a replica that dies
            # mid-charge leaves them due again when the lease runs out.
            due = (
                await uow.conn.execute(
                    select(payments)
                    .where(payments.c.state.in_(WORK_STATES), payments.c.next_attempt_at <= now)
                    .order_by(payments.c.next_attempt_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if due:
                await uow.conn.execute(
                    update(payments)
                    .where(payments.c.id.in_([row.id for row in due]))
                    .values(next_attempt_at=now + self._retry.lease)
                )
            else:
                upcoming = await uow.conn.scalar(
                    select(payments.c.next_attempt_at)
                    .where(payments.c.state.in_(WORK_STATES))
                    .order_by(payments.c.next_attempt_at)
                    .limit(1)
                )
        if not due:
            if upcoming is None:
                return None
            seconds: float = (upcoming - utcnow()).total_seconds()
            return max(0.0, seconds)
        for payment in due:
            if payment.state == CHARGING:
                await self._charge(payment)
            else:
                await self._refund(payment)
        return 0

    async def _charge(self, payment: Row[Any]) -> None:
        charge_id: str | None = None
        failure: str | None = None
        transient = False
        try:
            charge = await self._provider.charge(
                payment.id, payment.token, payment.amount, payment.currency
            )
            charge_id = charge.id
        except Declined as declined:
            failure = str(declined)
        except ProviderUnavailable as unavailable:
            failure, transient = str(unavailable), True
        outcome = "succeeded" if charge_id else ("error" if transient else "declined")
        async with self._unit_of_work() as uow:
            uow.correlation_id, uow.causation_id = payment.order_id, payment.requested_by
            state = await _record_attempt(uow, payment.id, "charge", outcome, failure)
            now = utcnow()
            tries = payment.attempts + 1
            values: dict[str, Any] = {"attempts": tries, "updated_at": now}
            if charge_id:
                # Charged after the order ended (VOIDED meanwhile): refund at once.
                values |= {
                    "charge_id": charge_id,
                    "state": SUCCEEDED if state == CHARGING else REFUNDING,
                    "next_attempt_at": now,
                }
                uow.emit(
                    PaymentSucceeded(
                        order_id=payment.order_id,
                        payment_id=payment.id,
                        amount=payment.amount,
                        currency=payment.currency,
                    )
                )
            elif transient and tries < self._retry.attempts:
                values["next_attempt_at"] = now + self._retry.delay(tries)
            else:
                reason = failure or "declined"
                if transient:
                    reason = f"payment provider unavailable after {tries} attempts: {failure}"
                values |= {
                    "state": FAILED if state == CHARGING else state,
                    "failure_reason": reason,
                }
                if state == CHARGING:
                    uow.emit(
                        PaymentFailed(
                            order_id=payment.order_id, payment_id=payment.id, reason=reason
                        )
                    )
            await uow.conn.execute(UPDATE_PAYMENT, {"payment": payment.id, **values})

    async def _refund(self, payment: Row[Any]) -> None:
        try:
            refund_id = await self._provider.refund(f"refund-{payment.id}", payment.charge_id)
        except ProviderUnavailable as unavailable:
            async with self._unit_of_work() as uow:
                await _record_attempt(uow, payment.id, "refund", "error", str(unavailable))
                tries = payment.attempts + 1
                await uow.conn.execute(
                    update(payments)
                    .where(payments.c.id == payment.id)
                    .values(attempts=tries, next_attempt_at=utcnow() + self._retry.delay(tries))
                )
            return
        async with self._unit_of_work() as uow:
            uow.correlation_id, uow.causation_id = payment.order_id, payment.requested_by
            await _record_attempt(uow, payment.id, "refund", "succeeded", None)
            await uow.conn.execute(
                update(payments)
                .where(payments.c.id == payment.id)
                .values(state=REFUNDED, refund_id=refund_id, updated_at=utcnow())
            )
            uow.emit(
                RefundIssued(
                    order_id=payment.order_id,
                    payment_id=payment.id,
                    amount=payment.amount,
                    currency=payment.currency,
                )
            )


async def _record_attempt(
    uow: UnitOfWork, payment_id: str, kind: str, outcome: str, detail: str | None
) -> str:
    """Record one attempt; returns the payment's state as it is now (it may have been voided)."""
    await uow.conn.execute(
        NEW_ATTEMPT,
        {
            "id": new_id(),
            "payment_id": payment_id,
            "kind": kind,
            "outcome": outcome,
            "detail": detail,
            "at": utcnow(),
        },
    )
    state = await uow.conn.scalar(PAYMENT_STATE, {"payment": payment_id})
    return str(state)
