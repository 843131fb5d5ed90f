"""Payments' handlers and processor against an in-memory twin of their repository, and against the
real one on SQLite (so that the twin cannot drift from what they get in production)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import select

from agora.contracts import orders, ticketing
from agora.contracts.payments import PaymentFailed, PaymentSucceeded, RefundIssued
from agora.messaging import Event, new_id, utcnow
from agora.messaging.sql import Database, sqlite_url
from agora.services.payments import store
from agora.services.payments.handlers import PaymentsHandlers
from agora.services.payments.provider import Charge, Declined, MockCardProvider
from agora.services.payments.repository import (
    DuePayment,
    DueRefund,
    Ledger,
    NewShare,
    PaymentsRepository,
    Payouts,
    StoredShare,
)
from agora.services.payments.store import (
    CHARGING,
    FAILED,
    REFUNDED,
    REFUNDING,
    SUCCEEDED,
    VOIDED,
    WORK_STATES,
)
from agora.services.payments.workers import PaymentProcessor, ProviderRetry

REQUEST_ID = "request-envelope-1"


class InMemoryPayments:
    """`PaymentsRepository`'s twin: the same answers, kept in dicts."""

    def __init__(
        self,
        rows: dict[str, dict[str, Any]],
        tries: list[dict[str, Any]],
        parts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._rows = rows  # by payment id
        self._tries = tries
        self._parts = {} if parts is None else parts  # partial refunds, by key

    async def refund_part(
        self,
        order_id: str,
        key: str,
        amount: Any,
        requested_by: str,
        now: dt.datetime,
        *,
        session_id: str | None = None,
    ) -> bool:
        charged = [
            row
            for row in self._rows.values()
            if row["order_id"] == order_id and row["state"] == "SUCCEEDED" and row["charge_id"]
        ]
        if not charged or key in self._parts:
            return False
        asked = sum(
            (
                p["amount"]
                for p in self._parts.values()
                if p["payment_id"] == charged[0]["id"] and p["state"] != FAILED
            ),
            Decimal(0),
        )
        if asked + amount > charged[0]["amount"]:
            return False
        self._parts[key] = {
            "id": f"part-{len(self._parts)}",
            "payment_id": charged[0]["id"],
            "session_id": session_id,
            "amount": amount,
            "requested_by": requested_by,
            "state": "REFUNDING",
            "attempts": 0,
            "next_attempt_at": now,
        }
        return True

    async def claim_due_refunds(
        self, now: dt.datetime, until: dt.datetime, *, limit: int
    ) -> list[DueRefund]:
        claimed = []
        for key, part in self._parts.items():
            if part["state"] == "REFUNDING" and part["next_attempt_at"] <= now:
                part["next_attempt_at"] = until
                payment = self._rows[part["payment_id"]]
                claimed.append(
                    DueRefund(
                        id=part["id"],
                        payment_id=part["payment_id"],
                        order_id=payment["order_id"],
                        key=key,
                        session_id=part["session_id"],
                        requested_by=part["requested_by"],
                        amount=part["amount"],
                        currency=payment["currency"],
                        charge_id=payment["charge_id"],
                        attempts=part["attempts"],
                    )
                )
        return claimed[:limit]

    async def next_due_refund(self) -> dt.datetime | None:
        due = [p["next_attempt_at"] for p in self._parts.values() if p["state"] == "REFUNDING"]
        return min(due, default=None)

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
        (part,) = (p for p in self._parts.values() if p["id"] == refund_id)
        part.update(state=state, attempts=attempts, next_attempt_at=next_attempt_at)

    def _of_order(self, order_id: str) -> dict[str, Any] | None:
        return next((row for row in self._rows.values() if row["order_id"] == order_id), None)

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
        if self._of_order(order_id) is not None:
            return None
        payment_id = new_id()
        self._rows[payment_id] = {
            "id": payment_id,
            "order_id": order_id,
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "token": token,
            "requested_by": requested_by,
            "state": CHARGING,
            "charge_id": None,
            "refund_id": None,
            "failure_reason": None,
            "attempts": 0,
            "next_attempt_at": now,
            "updated_at": now,
        }
        return payment_id

    async def void(self, order_id: str, now: dt.datetime) -> None:
        row = self._of_order(order_id)
        if row is not None and row["state"] == CHARGING:
            row |= {"state": VOIDED, "updated_at": now}

    async def refund(self, order_id: str, now: dt.datetime) -> bool:
        row = self._of_order(order_id)
        if row is None or row["state"] != SUCCEEDED:
            return False
        row |= {"state": REFUNDING, "next_attempt_at": now, "updated_at": now}
        return True

    async def claim_due(
        self, now: dt.datetime, until: dt.datetime, *, limit: int
    ) -> list[DuePayment]:
        due = sorted(
            (
                row
                for row in self._rows.values()
                if row["state"] in WORK_STATES and row["next_attempt_at"] <= now
            ),
            key=lambda row: row["next_attempt_at"],
        )[:limit]
        fields = {field.name for field in dataclasses.fields(DuePayment)}
        claimed = [DuePayment(**{k: v for k, v in row.items() if k in fields}) for row in due]
        for row in due:
            row["next_attempt_at"] = until
        return claimed

    async def next_due(self) -> dt.datetime | None:
        due = [row["next_attempt_at"] for row in self._rows.values() if row["state"] in WORK_STATES]
        return min(due, default=None)

    async def record_attempt(
        self, payment_id: str, kind: str, outcome: str, detail: str | None, at: dt.datetime
    ) -> str:
        self._tries.append({"payment_id": payment_id, "kind": kind, "outcome": outcome})
        return str(self._rows[payment_id]["state"])

    async def charged(
        self, payment_id: str, charge_id: str, state: str, *, attempts: int, now: dt.datetime
    ) -> None:
        self._rows[payment_id] |= {
            "charge_id": charge_id,
            "state": state,
            "next_attempt_at": now,
            "attempts": attempts,
            "updated_at": now,
        }

    async def retry(
        self, payment_id: str, at: dt.datetime, *, attempts: int, now: dt.datetime | None = None
    ) -> None:
        self._rows[payment_id] |= {"next_attempt_at": at, "attempts": attempts}
        if now is not None:
            self._rows[payment_id]["updated_at"] = now

    async def give_up(
        self, payment_id: str, state: str, reason: str, *, attempts: int, now: dt.datetime
    ) -> None:
        self._rows[payment_id] |= {
            "state": state,
            "failure_reason": reason,
            "attempts": attempts,
            "updated_at": now,
        }

    async def refunded(self, payment_id: str, refund_id: str, now: dt.datetime) -> None:
        self._rows[payment_id] |= {"state": REFUNDED, "refund_id": refund_id, "updated_at": now}


class InMemoryLedger:
    """`Ledger`'s twin."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state  # shares by payment, postings by key, plans, owners

    async def add_shares(self, payment_id: str, shares: list[NewShare]) -> None:
        self._state["shares"][payment_id] = [
            {"share_no": number, "share": new.share, "refunded": 0}
            for number, new in enumerate(shares)
        ]

    async def shares_of(self, payment_id: str) -> list[StoredShare]:
        return [
            StoredShare(row["share_no"], row["share"], row["refunded"])
            for row in self._state["shares"].get(payment_id, [])
        ]

    async def add_refunded(self, payment_id: str, parts: Any) -> None:
        rows = self._state["shares"][payment_id]
        for share_no, amount in parts:
            rows[share_no]["refunded"] += amount

    async def post(
        self,
        key: str,
        kind: str,
        currency: str,
        entries: list[tuple[str, int]],
        *,
        payment_id: str | None,
        order_id: str | None,
        now: dt.datetime,
    ) -> bool:
        assert sum(amount for _, amount in entries) == 0
        if key in self._state["postings"]:
            return False
        self._state["postings"][key] = (kind, currency, sorted(entries))
        return True

    async def set_plan(self, seller_id: str, plan: str) -> None:
        self._state["plans"][seller_id] = plan

    async def plans(self, seller_ids: Any) -> dict[str, str]:
        return {s: self._state["plans"][s] for s in seller_ids if s in self._state["plans"]}

    async def set_owner(self, store_id: str, seller_id: str | None) -> None:
        self._state["owners"][store_id] = seller_id


class NoPayouts:
    """`Payouts`' twin where none is ever asked for (a payout's request reads the ledger's
    sums in SQL: it is tested on the real repository only)."""

    async def claim_due(self, now: dt.datetime, until: dt.datetime, *, limit: int) -> list[Any]:
        return []

    async def next_due(self) -> dt.datetime | None:
        return None


@dataclasses.dataclass(frozen=True)
class Cause:
    id: str


class Unit:
    """What payments' handlers and processor use of `PaymentsUnitOfWork`."""

    def __init__(self, payments: Any, ledger: Any, payouts: Any, conn: Any = None) -> None:
        self.payments = payments
        self.ledger = ledger
        self.payouts = payouts
        self.conn = conn
        self.cause = Cause(REQUEST_ID)
        self.correlation_id: str | None = None
        self.causation_id: str | None = None
        self.emitted: list[Event] = []
        self.committed: list[Callable[[], None]] = []

    def emit(self, event: Event) -> None:
        self.emitted.append(event)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)


class Work(Protocol):
    """Units of work over either adapter (what they emit counts once they commit), and the
    payments as the API reads them: (state, failure reason, attempts' kinds and outcomes)."""

    emitted: list[Event]

    def unit_of_work(self) -> AbstractAsyncContextManager[Any]: ...

    async def payment(self, order_id: str) -> tuple[str, str | None, list[tuple[str, str]]]: ...

    async def postings(self) -> dict[str, tuple[str, str, list[tuple[str, int]]]]:
        """Every posting by key: (kind, currency, entries by account)."""
        ...


class MemoryWork:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {
            "payments": {},
            "attempts": [],
            "parts": {},
            "ledger": {"shares": {}, "postings": {}, "plans": {}, "owners": {}},
        }
        self.emitted: list[Event] = []

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Unit]:
        before = copy.deepcopy(self.state)  # a rollback puts it back
        unit = Unit(
            InMemoryPayments(self.state["payments"], self.state["attempts"], self.state["parts"]),
            InMemoryLedger(self.state["ledger"]),
            NoPayouts(),
        )
        try:
            yield unit
        except BaseException:
            self.state = before
            raise
        self.emitted.extend(unit.emitted)
        for callback in unit.committed:
            callback()

    async def payment(self, order_id: str) -> tuple[str, str | None, list[tuple[str, str]]]:
        (row,) = (r for r in self.state["payments"].values() if r["order_id"] == order_id)
        tries = [(t["kind"], t["outcome"]) for t in self.state["attempts"]]
        return row["state"], row["failure_reason"], tries

    async def postings(self) -> dict[str, tuple[str, str, list[tuple[str, int]]]]:
        return dict(self.state["ledger"]["postings"])


class SqliteWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Unit]:
        async with self.db.write() as conn:
            unit = Unit(PaymentsRepository(conn), Ledger(conn), Payouts(conn), conn)
            yield unit
        self.emitted.extend(unit.emitted)
        for callback in unit.committed:
            callback()

    async def payment(self, order_id: str) -> tuple[str, str | None, list[tuple[str, str]]]:
        async with self.db.read() as conn:
            payment = await store.payment_of_order(conn, order_id)
        assert payment is not None
        tries = [(attempt.kind, attempt.outcome) for attempt in payment.attempts]
        return payment.state, payment.failure_reason, tries

    async def postings(self) -> dict[str, tuple[str, str, list[tuple[str, int]]]]:
        async with self.db.read() as conn:
            keys = {
                row.id: (row.key, row.kind, row.currency)
                for row in await conn.execute(select(store.ledger_postings))
            }
            entries: dict[str, list[tuple[str, int]]] = {}
            for row in await conn.execute(select(store.ledger_entries)):
                entries.setdefault(row.posting_id, []).append((row.account, row.amount))
        return {
            key: (kind, currency, sorted(entries[posting_id]))
            for posting_id, (key, kind, currency) in keys.items()
        }


@pytest.fixture(params=["in-memory", "sqlite"])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = Database(sqlite_url(tmp_path / "payments.db"), store.metadata)
    await db.create_tables()
    try:
        yield SqliteWork(db)
    finally:
        await db.dispose()


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def handlers(wakes: Wakes) -> PaymentsHandlers:
    return PaymentsHandlers(wakes)


async def apply(work: Work, handle: Any, event: Event) -> None:
    async with work.unit_of_work() as uow:
        await handle(event, uow)


def requested(order_id: str, token: str = "tok_visa") -> orders.PaymentRequested:
    return orders.PaymentRequested(
        order_id=order_id,
        customer_id="buyer-1",
        amount=Decimal("12.50"),
        currency="EUR",
        payment_token=token,
    )


def cancelled(order_id: str) -> orders.OrderCancelled:
    return orders.OrderCancelled(order_id=order_id, customer_id="buyer-1", reason="changed mind")


def processor(work: Work, provider: Any = None, **retry: Any) -> PaymentProcessor:
    return PaymentProcessor(
        work.unit_of_work, provider or MockCardProvider(), ProviderRetry(**retry)
    )


async def run(processor: PaymentProcessor, steps: int = 10) -> None:
    """Step the processor until nothing is due now (or `steps` have run)."""
    for _ in range(steps):
        if await processor.step() != 0:
            return
    raise AssertionError(f"still busy after {steps} steps")


async def due(work: Work) -> dt.datetime | None:
    async with work.unit_of_work() as uow:
        return await uow.payments.next_due()  # type: ignore[no-any-return]


# -- the handlers ----------------------------------------------------------------------------


async def test_a_payment_request_is_recorded_once_and_wakes_the_processor_once(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    before = utcnow()
    await apply(work, handlers.on_payment_requested, requested("o1"))
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_other"))

    assert await work.payment("o1") == (CHARGING, None, [])
    assert wakes.count == 1
    upcoming = await due(work)
    assert upcoming is not None
    assert before <= upcoming <= utcnow(), "due at once"
    async with work.unit_of_work() as uow:
        (claimed,) = await uow.payments.claim_due(utcnow(), utcnow(), limit=10)
    assert (claimed.requested_by, claimed.token, claimed.attempts) == (REQUEST_ID, "tok_visa", 0)
    assert (claimed.amount, claimed.currency) == (Decimal("12.50"), "EUR")
    assert work.emitted == []


async def test_an_order_ended_before_its_charge_voids_it_without_waking(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))

    await apply(work, handlers.on_order_ended, cancelled("o1"))

    assert await work.payment("o1") == (VOIDED, None, [])
    assert wakes.count == 1, "only the request woke the processor"
    assert await due(work) is None
    await run(processor(work))
    assert await work.payment("o1") == (VOIDED, None, [])


async def test_an_order_ended_after_its_charge_is_refunded(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))
    await run(processor(work))
    work.emitted.clear()

    await apply(work, handlers.on_order_ended, orders.OrderExpired(order_id="o1", customer_id="b"))

    assert (await work.payment("o1"))[0] == REFUNDING
    assert wakes.count == 2
    await run(processor(work))
    assert await work.payment("o1") == (
        REFUNDED,
        None,
        [("charge", "succeeded"), ("refund", "succeeded")],
    )
    assert work.emitted == [
        RefundIssued(
            order_id="o1",
            payment_id=work.emitted[0].payment_id,  # type: ignore[attr-defined]
            amount=Decimal("12.50"),
            currency="EUR",
            customer_id="buyer-1",
        )
    ]


def ticket_cancelled(order_id: str, ticket_id: str, price: str) -> ticketing.TicketCancelled:
    return ticketing.TicketCancelled(
        ticket_id=ticket_id,
        order_id=order_id,
        customer_id="b",
        session_id="s",
        category="standard",
        seat_id=f"seat-{ticket_id}",
        price=Decimal(price),
        currency="EUR",
        reason="cancelled by the buyer",
    )


async def test_a_cancelled_tickets_price_is_refunded_once_and_the_rest_stays_charged(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))
    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t0", "5.00"))
    assert wakes.count == 1, "nothing to refund before the charge"
    await run(processor(work))
    work.emitted.clear()

    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t1", "2.50"))
    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t1", "2.50"))
    assert wakes.count == 2, "the second cancellation of one ticket refunds nothing"
    await run(processor(work))

    state, _, tries = await work.payment("o1")
    assert state == SUCCEEDED
    assert tries == [("charge", "succeeded"), ("refund", "succeeded")]
    assert [(e.amount, e.ticket_id) for e in work.emitted] == [  # type: ignore[attr-defined]
        (Decimal("2.50"), "t1")
    ]


async def test_an_ended_order_without_a_live_payment_changes_nothing(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_chargeDeclined"))
    await run(processor(work))

    await apply(work, handlers.on_order_ended, cancelled("o1"))
    await apply(work, handlers.on_order_ended, cancelled("never-paid"))

    assert (await work.payment("o1"))[0] == FAILED
    assert wakes.count == 1


# -- the processor ---------------------------------------------------------------------------


async def test_a_charge_that_succeeds_is_announced(work: Work, handlers: PaymentsHandlers) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))

    await run(processor(work))

    assert await work.payment("o1") == (SUCCEEDED, None, [("charge", "succeeded")])
    (succeeded,) = work.emitted
    assert isinstance(succeeded, PaymentSucceeded)
    assert (succeeded.order_id, succeeded.amount, succeeded.currency) == (
        "o1",
        Decimal("12.50"),
        "EUR",
    )
    assert await due(work) is None, "a settled payment is nobody's turn"


async def test_a_declined_card_fails_the_payment_at_once(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_chargeDeclined"))

    await run(processor(work))

    assert await work.payment("o1") == (FAILED, "card declined", [("charge", "declined")])
    assert [type(e) for e in work.emitted] == [PaymentFailed]
    assert work.emitted[0].reason == "card declined"  # type: ignore[attr-defined]


async def test_transient_errors_are_retried_until_the_charge_succeeds(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_processing_error"))

    await run(processor(work, first_delay=dt.timedelta(0)))

    state, _, tries = await work.payment("o1")
    assert (state, tries) == (
        SUCCEEDED,
        [("charge", "error"), ("charge", "error"), ("charge", "succeeded")],
    )
    assert [type(e) for e in work.emitted] == [PaymentSucceeded]


async def test_a_retry_waits_its_backoff(work: Work, handlers: PaymentsHandlers) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_processing_error"))
    before = utcnow()

    wait = await processor(work, first_delay=dt.timedelta(seconds=20)).step()
    assert wait == 0
    assert await processor(work).step() == pytest.approx(20, abs=5)

    upcoming = await due(work)
    assert upcoming is not None
    assert upcoming >= before + dt.timedelta(seconds=20)
    assert await work.payment("o1") == (CHARGING, None, [("charge", "error")])


async def test_transient_errors_past_the_last_attempt_fail_the_payment(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_processing_error"))

    await run(processor(work, attempts=2, first_delay=dt.timedelta(0)))

    state, reason, tries = await work.payment("o1")
    assert (state, tries) == (FAILED, [("charge", "error"), ("charge", "error")])
    assert reason == "payment provider unavailable after 2 attempts: processing error, try again"
    assert [type(e) for e in work.emitted] == [PaymentFailed]


class EndsTheOrderMidCharge(MockCardProvider):
    """The order ends while the provider is charging: the race the processor must close."""

    def __init__(self, end: Callable[[], Any]) -> None:
        super().__init__()
        self._end = end

    async def charge(
        self, idempotency_key: str, token: str, amount: Decimal, currency: str
    ) -> Charge:
        await self._end()
        return await super().charge(idempotency_key, token, amount, currency)


async def test_a_charge_that_lands_after_the_order_ended_is_refunded_at_once(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))
    provider = EndsTheOrderMidCharge(lambda: apply(work, handlers.on_order_ended, cancelled("o1")))

    await run(processor(work, provider))

    assert await work.payment("o1") == (
        REFUNDED,
        None,
        [("charge", "succeeded"), ("refund", "succeeded")],
    )
    assert [type(e) for e in work.emitted] == [PaymentSucceeded, RefundIssued]


async def test_a_decline_that_lands_after_the_order_ended_is_not_announced(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1", token="tok_chargeDeclined"))
    provider = EndsTheOrderMidCharge(lambda: apply(work, handlers.on_order_ended, cancelled("o1")))

    await run(processor(work, provider))

    assert await work.payment("o1") == (VOIDED, "card declined", [("charge", "declined")])
    assert work.emitted == []


# -- the ledger ------------------------------------------------------------------------------


def shared(order_id: str) -> orders.PaymentRequested:
    """12.50 EUR: 2.50 of a free seller's goods, 10.00 of a premium seller's session."""
    return orders.PaymentRequested(
        order_id=order_id,
        customer_id="buyer-1",
        amount=Decimal("12.50"),
        currency="EUR",
        payment_token="tok_visa",
        shares=(
            orders.PaymentShare(store_id="shop", seller_id="free-1", amount=Decimal("2.50")),
            orders.PaymentShare(
                store_id="hall", seller_id="premium-1", amount=Decimal("10.00"), session_id="s"
            ),
        ),
    )


async def sellers_known(work: Work, handlers: PaymentsHandlers) -> None:
    from agora.contracts import identity

    for user_id, plan in (("free-1", "free"), ("premium-1", "free")):
        registered = identity.UserRegistered(
            user_id=user_id, email=f"{user_id}@example.com", role="seller", plan=plan
        )
        await apply(work, handlers.on_user_registered, registered)
    upgraded = identity.PlanChanged(user_id="premium-1", plan="premium", previous_plan="free")
    await apply(work, handlers.on_plan_changed, upgraded)


async def test_a_capture_is_posted_split_between_stores_at_their_sellers_rates_with_the_fee(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await sellers_known(work, handlers)
    await apply(work, handlers.on_payment_requested, shared("o1"))

    await run(processor(work))

    postings = await work.postings()
    assert sorted(postings) == sorted(
        [f"capture:{work.emitted[0].payment_id}", f"fee:{work.emitted[0].payment_id}"]  # type: ignore[attr-defined]
    )
    capture, fee = (postings[key] for key in sorted(postings))
    # Free: 10 % of 2.50 is 0.25; premium: 5 % of 10.00 is 0.50.
    assert capture == (
        "capture",
        "EUR",
        sorted(
            [
                ("provider:clearing", 1250),
                ("store:shop", -225),
                ("store:hall", -950),
                ("platform:commission", -75),
            ]
        ),
    )
    # The mock provider keeps 1.4 %: 17.5 cents, rounded half up.
    assert fee == ("fee", "EUR", sorted([("platform:fees", 18), ("provider:clearing", -18)]))


async def test_a_ticket_refund_takes_its_price_back_from_its_sessions_store_and_the_rest_whole(
    work: Work, handlers: PaymentsHandlers
) -> None:
    await sellers_known(work, handlers)
    await apply(work, handlers.on_payment_requested, shared("o1"))
    await run(processor(work))

    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t1", "4.00"))
    await run(processor(work))
    await apply(work, handlers.on_order_ended, cancelled("o1"))
    await run(processor(work))

    refunds = [(e.ticket_id, e.amount) for e in work.emitted if isinstance(e, RefundIssued)]
    assert refunds == [("t1", Decimal("4.00")), (None, Decimal("8.50"))], "the whole: what was left"
    postings = await work.postings()
    (payment_id,) = {k.split(":", 1)[1] for k in postings if k.startswith("capture:")}
    (part_key,) = [k for k in postings if k.startswith("refund:") and payment_id not in k]
    assert postings[part_key][2] == sorted(
        [("provider:clearing", -400), ("store:hall", 380), ("platform:commission", 20)]
    )
    assert postings[f"refund:{payment_id}"][2] == sorted(
        [
            ("provider:clearing", -850),
            ("store:shop", 225),
            ("store:hall", 570),
            ("platform:commission", 55),
        ]
    )
    totals: dict[str, int] = {}
    for _, _, entries in postings.values():
        for account, amount in entries:
            totals[account] = totals.get(account, 0) + amount
    assert {a: v for a, v in totals.items() if v} == {
        "platform:fees": 18,
        "provider:clearing": -18,
    }


async def test_refunding_more_than_was_paid_is_refused(
    work: Work, handlers: PaymentsHandlers, wakes: Wakes
) -> None:
    await apply(work, handlers.on_payment_requested, requested("o1"))
    await run(processor(work))

    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t1", "10.00"))
    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t2", "2.51"))
    await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t3", "2.50"))
    await run(processor(work))

    refunded = [e.ticket_id for e in work.emitted if isinstance(e, RefundIssued)]
    assert refunded == ["t1", "t3"]


async def test_the_ledger_check_holds_and_names_each_kind_of_tampering(
    tmp_path: Path, handlers: PaymentsHandlers
) -> None:
    from sqlalchemy import delete, update

    from agora.services.payments.audit import ledger_invariants

    db = Database(sqlite_url(tmp_path / "payments.db"), store.metadata)
    await db.create_tables()
    work = SqliteWork(db)
    try:
        await sellers_known(work, handlers)
        for order_id in ("o1", "o2"):
            await apply(work, handlers.on_payment_requested, shared(order_id))
        await run(processor(work))
        await apply(work, handlers.on_ticket_cancelled, ticket_cancelled("o1", "t1", "4.00"))
        await apply(work, handlers.on_order_ended, cancelled("o2"))
        await run(processor(work))

        async def violated() -> set[str]:
            async with db.read() as conn:
                return {v.name for v in await ledger_invariants(conn) if not v.ok}

        assert await violated() == set()
        tampering = [
            (
                update(store.ledger_balances)
                .where(store.ledger_balances.c.account == "platform:commission")
                .values(balance=store.ledger_balances.c.balance + 1),
                {"balances are their entries"},
            ),
            (
                update(store.ledger_entries)
                .where(store.ledger_entries.c.account == "store:shop")
                .values(amount=store.ledger_entries.c.amount - 1),
                {"postings balance", "balances are their entries"},
            ),
            (
                delete(store.ledger_entries).where(
                    store.ledger_entries.c.posting_id.in_(
                        select(store.ledger_postings.c.id).where(
                            store.ledger_postings.c.key.like("refund:%")
                        )
                    )
                ),
                {"postings balance", "balances are their entries"},
            ),
            (
                delete(store.ledger_postings).where(store.ledger_postings.c.key.like("refund:%")),
                {"refunds posted", "balances are their entries"},
            ),
            (
                update(store.payment_shares).values(amount=store.payment_shares.c.amount + 1),
                {"shares add up"},
            ),
            (
                update(store.ledger_postings)
                .where(store.ledger_postings.c.kind == "capture")
                .values(key="lost:" + store.ledger_postings.c.key),
                {"one capture posting per charge"},
            ),
        ]
        for statement, names in tampering:
            async with db.write() as conn:
                await conn.execute(statement)
            assert names <= await violated(), statement
    finally:
        await db.dispose()


# -- payouts (on the real repository: a request reads the ledger's sums in SQL) -------------


class RefusesTransfers(MockCardProvider):
    async def transfer(self, *args: Any) -> str:
        raise Declined("the seller's account is closed")


async def test_a_payout_takes_what_is_available_once_and_the_provider_sends_it(
    tmp_path: Path, handlers: PaymentsHandlers
) -> None:
    import datetime as dt

    from agora.auth import Principal
    from agora.contracts import catalog
    from agora.contracts.payments import PayoutSent
    from agora.services.payments.audit import ledger_invariants
    from agora.services.payments.payouts import (
        InsufficientFunds,
        PayoutKeyReused,
        available_now,
        request_payout,
    )

    db = Database(sqlite_url(tmp_path / "payments.db"), store.metadata)
    await db.create_tables()
    work = SqliteWork(db)
    seller = Principal(
        user_id="free-1",
        role="seller",
        plan="free",
        email="free-1@example.com",
        session_id="s",
        expires_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
    )
    opened = catalog.StoreOpened(store_id="shop", seller_id="free-1", name="Shop")

    async def pay(amount: str | None, key: str, *, holding: float = 0) -> tuple[Any, bool]:
        return await request_payout(
            work.unit_of_work,  # type: ignore[arg-type]
            seller,
            "shop",
            "EUR",
            None if amount is None else Decimal(amount),
            key,
            holding=dt.timedelta(days=holding),
            wake=lambda: None,
        )

    async def left() -> int:
        async with db.read() as conn:
            return await available_now(conn, "shop", "EUR", dt.timedelta(0))

    try:
        await sellers_known(work, handlers)
        await apply(work, handlers.on_store_opened, opened)
        await apply(work, handlers.on_payment_requested, shared("o1"))
        await run(processor(work))
        assert await left() == 225  # 2.50 less 10 %

        with pytest.raises(InsufficientFunds):  # nothing is past a week's holding yet
            await pay(None, "too-soon", holding=7)
        with pytest.raises(InsufficientFunds):
            await pay("2.26", "too-much")
        first, made = await pay("1.00", "k1")
        assert (first.amount, first.state, made) == (100, "PAYING", True)
        assert await left() == 125
        replay, made = await pay("1.00", "k1")
        assert (replay.id, made) == (first.id, False)
        with pytest.raises(PayoutKeyReused):
            await pay("1.25", "k1")

        await run(processor(work))
        sent = [e for e in work.emitted if isinstance(e, PayoutSent)]
        assert [(e.payout_id, e.amount) for e in sent] == [(first.id, Decimal("1.00"))]

        refused, _ = await pay(None, "k2")
        assert refused.amount == 125
        await run(processor(work, RefusesTransfers()))
        assert await left() == 125, "a refused transfer gives the money back"

        postings = await work.postings()
        assert postings[f"payout-sent:{first.id}"][2] == sorted(
            [("platform:payouts", 100), ("provider:clearing", -100)]
        )
        assert postings[f"payout-failed:{refused.id}"][2] == sorted(
            [("platform:payouts", 125), ("store:shop", -125)]
        )
        async with db.read() as conn:
            assert [v for v in await ledger_invariants(conn) if not v.ok] == []
    finally:
        await db.dispose()


async def test_a_schedule_pays_each_store_what_it_has_available_once_per_period(
    tmp_path: Path, handlers: PaymentsHandlers
) -> None:
    import datetime as dt

    from agora.services.payments.payouts import PayoutScheduler

    db = Database(sqlite_url(tmp_path / "payments.db"), store.metadata)
    await db.create_tables()
    work = SqliteWork(db)
    now = [dt.datetime(2030, 1, 1, 9, 30, tzinfo=dt.UTC)]
    scheduler = PayoutScheduler(
        work.unit_of_work,  # type: ignore[arg-type]
        every=dt.timedelta(hours=24),
        holding=dt.timedelta(0),
        wake=lambda: None,
        clock=lambda: now[0],
    )

    async def paid_out() -> list[tuple[str, int, str]]:
        async with db.read() as conn:
            rows = await conn.execute(
                select(
                    store.payouts.c.store_id, store.payouts.c.amount, store.payouts.c.key
                ).order_by(store.payouts.c.created_at)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    try:
        await sellers_known(work, handlers)
        await apply(work, handlers.on_payment_requested, shared("o1"))
        await run(processor(work))

        assert await scheduler.step() == 14.5 * 3600  # until tomorrow's period begins
        assert await scheduler.step() == 14.5 * 3600
        first_day = await paid_out()
        period = int(now[0].timestamp() // 86_400)
        assert sorted(first_day) == [
            ("hall", 950, f"schedule:{period}:EUR"),
            ("shop", 225, f"schedule:{period}:EUR"),
        ]

        await apply(work, handlers.on_payment_requested, shared("o2"))
        await run(processor(work))
        now[0] += dt.timedelta(hours=24)
        await scheduler.step()
        assert len(await paid_out()) == 4
        await apply(work, handlers.on_payment_requested, shared("o3"))
        await run(processor(work))
        restarted = PayoutScheduler(
            work.unit_of_work,  # type: ignore[arg-type]
            every=dt.timedelta(hours=24),
            holding=dt.timedelta(0),
            wake=lambda: None,
            clock=lambda: now[0],
        )
        await restarted.step()
        assert len(await paid_out()) == 4, "a restart within the period pays nothing twice"
    finally:
        await db.dispose()
