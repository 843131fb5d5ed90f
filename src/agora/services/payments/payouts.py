"""Payouts: a store's seller (or an admin) asks for what of the store's balance is available,
once per Idempotency-Key; the amount leaves the balance at once (posted in the request's
transaction) and the processor has the provider transfer it.

Two payouts of one store never take the same money: the request holds the store's balance row
(PostgreSQL's `FOR UPDATE`; SQLite has one writer at a time) from before it reads what is
available until it has posted the payout.

With a schedule (`AGORA_PAYOUT_SCHEDULE_HOURS`), `PayoutScheduler` pays every store what it has
available once per period, as the platform itself (the period is the Idempotency-Key, so a
restart within a period pays nothing twice)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from agora.auth import Principal
from agora.messaging import Database, utcnow
from agora.problems import ProblemError
from agora.services.payments import books, store
from agora.services.payments.ledger import from_minor, payout_entries, store_account, to_minor
from agora.services.payments.repository import PaymentsUnitOfWork

__all__ = [
    "InsufficientFunds",
    "Payout",
    "PayoutKeyReused",
    "PayoutScheduler",
    "available_now",
    "payouts_of",
    "request_payout",
]


class InsufficientFunds(ProblemError):
    def __init__(self, store_id: str, currency: str, available: int) -> None:
        shown = from_minor(available, currency)
        super().__init__(
            409,
            "insufficient-funds",
            "Not that much available",
            f"store {store_id} has {shown} {currency} available to pay out",
            available=str(shown),
            currency=currency,
        )


class PayoutKeyReused(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "This Idempotency-Key was first used for another payout.",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Payout:
    id: str
    store_id: str
    currency: str
    amount: int
    state: str
    transfer_id: str | None
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> Payout:
        return cls(
            id=row.id,
            store_id=row.store_id,
            currency=row.currency,
            amount=int(row.amount),
            state=row.state,
            transfer_id=row.transfer_id,
            failure_reason=row.failure_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


async def available_now(conn: Any, store_id: str, currency: str, holding: dt.timedelta) -> int:
    """What of the store's balance in `currency` may be paid out now (`books.available`)."""
    rows = await store.balances(conn, store_account(store_id), utcnow() - holding)
    for row_currency, balance, matured in rows:
        if row_currency == currency:
            return books.available(balance, matured)
    return 0


async def request_payout(
    unit_of_work: Callable[[], PaymentsUnitOfWork],
    caller: Principal | None,
    store_id: str,
    currency: str,
    amount: Decimal | None,
    key: str,
    *,
    holding: dt.timedelta,
    wake: Callable[[], None],
    locking: bool = True,
) -> tuple[Payout, bool]:
    """Pay out `amount` (None: all that is available) of the store's balance in `currency`,
    once per `key`, for `caller` (None: the platform's schedule): the payout, and whether this
    request made it. `locking=False` is for the
    race test only: it reads what is available in a transaction of its own, before the one
    that takes it."""
    wanted = None if amount is None else to_minor(amount, currency)
    seen: int | None = None
    if not locking:
        async with unit_of_work() as uow:
            seen = await available_now(uow.conn, store_id, currency, holding)
    async with unit_of_work() as uow:
        if caller is not None:
            await books.check_reader(uow.conn, caller, store_id)
        if locking:
            await uow.payouts.lock_balance(store_account(store_id), currency)
        first = await uow.payouts.find(store_id, key)
        if first is not None:
            if first.currency != currency or wanted not in (None, first.amount):
                raise PayoutKeyReused
            return Payout.of(first), False
        left = (
            seen if seen is not None else await available_now(uow.conn, store_id, currency, holding)
        )
        paid = left if wanted is None else wanted
        if paid <= 0 or paid > left:
            raise InsufficientFunds(store_id, currency, left)
        now = utcnow()
        payout_id = await uow.payouts.add(
            store_id,
            key,
            currency,
            paid,
            requested_by=SCHEDULE if caller is None else caller.user_id,
            now=now,
        )
        await uow.ledger.post(
            f"payout:{payout_id}",
            "payout",
            currency,
            payout_entries(store_id, paid, "asked"),
            payment_id=None,
            order_id=None,
            now=now,
        )
        uow.after_commit(wake)
        made = await uow.payouts.find(store_id, key)
    return Payout.of(made), True


SCHEDULE = "schedule"
"""Who asked for a scheduled payout."""


class PayoutScheduler:
    """Once per `every`, a payout of what each store has available in each currency."""

    def __init__(
        self,
        unit_of_work: Callable[[], PaymentsUnitOfWork],
        *,
        every: dt.timedelta,
        holding: dt.timedelta,
        wake: Callable[[], None],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._every = every
        self._holding = holding
        self._wake = wake
        self._clock = clock
        self._done: int | None = None  # the last period paid out

    async def step(self) -> float | None:
        """Pay out this period's payouts if not done yet; seconds until the next period."""
        now = self._clock()
        period = int(now.timestamp() // self._every.total_seconds())
        if period != self._done:
            async with self._unit_of_work() as uow:
                owed = await store.owed_balances(uow.conn)
            for store_id, currency in owed:
                try:
                    await request_payout(
                        self._unit_of_work,
                        None,
                        store_id,
                        currency,
                        None,
                        f"{SCHEDULE}:{period}:{currency}",
                        holding=self._holding,
                        wake=self._wake,
                    )
                except InsufficientFunds:
                    continue  # owed, but nothing past the holding period yet
            self._done = period
        start = dt.datetime.fromtimestamp((period + 1) * self._every.total_seconds(), dt.UTC)
        return max(0.0, (start - self._clock()).total_seconds())


async def payouts_of(db: Database, caller: Principal, store_id: str, limit: int) -> list[Payout]:
    async with db.read() as conn:
        await books.check_reader(conn, caller, store_id)
        return [Payout.of(row) for row in await store.payouts_of(conn, store_id, limit=limit)]
