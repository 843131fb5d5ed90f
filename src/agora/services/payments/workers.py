"""Payments' background work: the processor that takes each payment's turn at the provider, and
posts to the ledger what the provider did (a capture and its fee, a refund) in the same
transaction as the payment's new state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal

from agora.contracts.payments import PaymentFailed, PaymentSucceeded, PayoutSent, RefundIssued
from agora.messaging import utcnow
from agora.services.payments.ledger import (
    Share,
    capture_entries,
    fee_entries,
    from_minor,
    payout_entries,
    refund_entries,
    take_back,
    to_minor,
)
from agora.services.payments.provider import CardProvider, Charge, Declined, ProviderUnavailable
from agora.services.payments.repository import (
    DuePayment,
    DuePayout,
    DueRefund,
    NewShare,
    PaymentsUnitOfWork,
)
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    PAID,
    PAYING,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
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
        unit_of_work: Callable[[], PaymentsUnitOfWork],
        provider: CardProvider,
        retry: ProviderRetry,
        *,
        batch_size: int = 100,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._provider = provider
        self._retry = retry
        self._batch_size = batch_size

    async def step(self) -> float | None:
        now = utcnow()
        async with self._unit_of_work() as uow:
            # Claim due payments for a lease: another replica skips them, and a replica that dies
            # mid-charge leaves them due again when the lease runs out.
            lease = now + self._retry.lease
            due = await uow.payments.claim_due(now, lease, limit=self._batch_size)
            parts = await uow.payments.claim_due_refunds(now, lease, limit=self._batch_size)
            sends = await uow.payouts.claim_due(now, lease, limit=self._batch_size)
            upcoming = [
                at
                for at in (
                    None if due else await uow.payments.next_due(),
                    None if parts else await uow.payments.next_due_refund(),
                    None if sends else await uow.payouts.next_due(),
                )
                if at is not None
            ]
        if not due and not parts and not sends:
            if not upcoming:
                return None
            seconds: float = (min(upcoming) - utcnow()).total_seconds()
            return max(0.0, seconds)
        for payment in due:
            if payment.state == CHARGING:
                await self._charge(payment)
            else:
                await self._refund(payment)
        for part in parts:
            await self._refund_part(part)
        for payout in sends:
            await self._send(payout)
        return 0

    async def _send(self, payout: DuePayout) -> None:
        """Have the provider transfer the payout; a transient failure is tried again (the money
        is owed: never given up), a refusal gives it back to the store's balance."""
        amount = from_minor(payout.amount, payout.currency)
        transfer_id: str | None = None
        failure: str | None = None
        transient = False
        try:
            transfer_id = await self._provider.transfer(
                f"payout-{payout.id}", payout.store_id, amount, payout.currency
            )
        except Declined as declined:
            failure = str(declined)
        except ProviderUnavailable as unavailable:
            failure, transient = str(unavailable), True
        async with self._unit_of_work() as uow:
            uow.correlation_id, uow.causation_id = payout.id, payout.requested_by
            now = utcnow()
            tries = payout.attempts + 1
            if transient:
                await uow.payouts.settle(
                    payout.id,
                    PAYING,
                    transfer_id=None,
                    failure=failure,
                    attempts=tries,
                    next_attempt_at=now + self._retry.delay(tries),
                    now=now,
                )
                return
            stage, state = ("sent", PAID) if transfer_id else ("failed", FAILED)
            if transfer_id is None:
                logger.error("payout %s refused: %s", payout.id, failure)
            await uow.payouts.settle(
                payout.id,
                state,
                transfer_id=transfer_id,
                failure=failure,
                attempts=tries,
                next_attempt_at=now,
                now=now,
            )
            await uow.ledger.post(
                f"payout-{stage}:{payout.id}",
                "payout",
                payout.currency,
                payout_entries(payout.store_id, payout.amount, stage),
                payment_id=None,
                order_id=None,
                now=now,
            )
            if transfer_id:
                uow.emit(
                    PayoutSent(
                        payout_id=payout.id,
                        store_id=payout.store_id,
                        amount=amount,
                        currency=payout.currency,
                        seller_id=payout.seller_id,
                    )
                )

    async def _refund_part(self, part: DueRefund) -> None:
        failure: str | None = None
        refund_id: str | None = None
        transient = False
        try:
            refund_id = await self._provider.refund(
                f"refund-{part.id}", part.charge_id, part.amount
            )
        except Declined as declined:
            failure = str(declined)
        except ProviderUnavailable as unavailable:
            failure, transient = str(unavailable), True
        async with self._unit_of_work() as uow:
            uow.correlation_id, uow.causation_id = part.order_id, part.requested_by
            outcome = "succeeded" if refund_id else ("error" if transient else "declined")
            await uow.payments.record_attempt(part.payment_id, "refund", outcome, failure, utcnow())
            now = utcnow()
            tries = part.attempts + 1
            if refund_id is not None:
                await _post_refund(
                    uow,
                    f"refund:{part.id}",
                    part.payment_id,
                    part.order_id,
                    part.currency,
                    to_minor(part.amount, part.currency),
                    part.session_id,
                )
                await uow.payments.settle_refund(
                    part.id,
                    REFUNDED,
                    provider_refund_id=refund_id,
                    failure=None,
                    attempts=tries,
                    next_attempt_at=now,
                    now=now,
                )
                uow.emit(
                    RefundIssued(
                        order_id=part.order_id,
                        payment_id=part.payment_id,
                        amount=part.amount,
                        currency=part.currency,
                        ticket_id=part.key.removeprefix("ticket:"),
                    )
                )
            elif transient:  # the provider comes back: a refund owed is never given up
                await uow.payments.settle_refund(
                    part.id,
                    REFUNDING,
                    provider_refund_id=None,
                    failure=failure,
                    attempts=tries,
                    next_attempt_at=now + self._retry.delay(tries),
                    now=now,
                )
            else:
                logger.error("refund %s of order %s refused: %s", part.id, part.order_id, failure)
                await uow.payments.settle_refund(
                    part.id,
                    FAILED,
                    provider_refund_id=None,
                    failure=failure,
                    attempts=tries,
                    next_attempt_at=now,
                    now=now,
                )

    async def _charge(self, payment: DuePayment) -> None:
        charge: Charge | None = None
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
            state = await uow.payments.record_attempt(
                payment.id, "charge", outcome, failure, utcnow()
            )
            now = utcnow()
            tries = payment.attempts + 1
            if charge is not None:
                # Charged after the order ended (VOIDED meanwhile): refund at once.
                refund = SUCCEEDED if state == CHARGING else REFUNDING
                await uow.payments.charged(payment.id, charge.id, refund, attempts=tries, now=now)
                await _post_capture(uow, payment, charge, now)
                uow.emit(
                    PaymentSucceeded(
                        order_id=payment.order_id,
                        payment_id=payment.id,
                        amount=payment.amount,
                        currency=payment.currency,
                    )
                )
            elif transient and tries < self._retry.attempts:
                await uow.payments.retry(
                    payment.id, now + self._retry.delay(tries), attempts=tries, now=now
                )
            else:
                reason = failure or "declined"
                if transient:
                    reason = f"payment provider unavailable after {tries} attempts: {failure}"
                settled = FAILED if state == CHARGING else state
                await uow.payments.give_up(payment.id, settled, reason, attempts=tries, now=now)
                if state == CHARGING:
                    uow.emit(
                        PaymentFailed(
                            order_id=payment.order_id, payment_id=payment.id, reason=reason
                        )
                    )

    async def _refund(self, payment: DuePayment) -> None:
        assert payment.charge_id is not None  # only a charged payment is refunded
        try:
            refund_id = await self._provider.refund(f"refund-{payment.id}", payment.charge_id)
        except ProviderUnavailable as unavailable:
            async with self._unit_of_work() as uow:
                await uow.payments.record_attempt(
                    payment.id, "refund", "error", str(unavailable), utcnow()
                )
                tries = payment.attempts + 1
                await uow.payments.retry(
                    payment.id, utcnow() + self._retry.delay(tries), attempts=tries
                )
            return
        async with self._unit_of_work() as uow:
            uow.correlation_id, uow.causation_id = payment.order_id, payment.requested_by
            await uow.payments.record_attempt(payment.id, "refund", "succeeded", None, utcnow())
            await uow.payments.refunded(payment.id, refund_id, utcnow())
            refunded = await _post_refund(
                uow, f"refund:{payment.id}", payment.id, payment.order_id, payment.currency, None
            )
            uow.emit(
                RefundIssued(
                    order_id=payment.order_id,
                    payment_id=payment.id,
                    # what was left: a cancelled ticket's price went back before
                    amount=payment.amount
                    if refunded is None
                    else from_minor(refunded, payment.currency),
                    currency=payment.currency,
                    customer_id=payment.customer_id,
                )
            )


async def _post_capture(
    uow: PaymentsUnitOfWork, payment: DuePayment, charge: Charge, now: dt.datetime
) -> None:
    """The provider captured the charge: the buyer's money is owed to the stores and the
    platform, and the provider kept its fee. A payment requested before payments kept shares
    is the platform's own sale."""
    stored = await uow.ledger.shares_of(payment.id)
    if stored:
        shares = [row.share for row in stored]
    else:
        shares = [Share(None, to_minor(payment.amount, payment.currency), 0)]
        await uow.ledger.add_shares(payment.id, [NewShare(shares[0], None, Decimal(0))])
    postings = [(f"capture:{payment.id}", "capture", capture_entries(shares))]
    fee = to_minor(charge.fee, payment.currency)
    if fee:
        postings.append((f"fee:{payment.id}", "fee", fee_entries(fee)))
    for key, kind, entries in postings:
        await uow.ledger.post(
            key,
            kind,
            payment.currency,
            entries,
            payment_id=payment.id,
            order_id=payment.order_id,
            now=now,
        )


async def _post_refund(
    uow: PaymentsUnitOfWork,
    key: str,
    payment_id: str,
    order_id: str,
    currency: str,
    amount: int | None,
    session_id: str | None = None,
) -> int | None:
    """The provider refunded `amount` (None: all that was left) of the payment: it is taken
    back from its shares (first from the session's) and their commission; returns what was
    refunded. A payment charged before payments kept a ledger is not in it, nor are its
    refunds (None)."""
    stored = await uow.ledger.shares_of(payment_id)
    if not stored:
        return None
    shares = [(row.share, row.refunded) for row in stored]
    left = sum(share.amount - refunded for share, refunded in shares)
    parts = take_back(shares, left if amount is None else amount, session_id)
    posted = await uow.ledger.post(
        key,
        "refund",
        currency,
        refund_entries(parts),
        payment_id=payment_id,
        order_id=order_id,
        now=utcnow(),
    )
    if posted:
        await uow.ledger.add_refunded(
            payment_id,
            [
                (row.share_no, part.amount)
                for row, part in zip(stored, parts, strict=True)
                if part.amount
            ],
        )
    return sum(part.amount for part in parts)
