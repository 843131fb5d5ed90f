"""Payments' HTTP API: a payment with its attempts and postings, by order; a store's balance,
its ledger (JSON pages, or all of it as CSV) and its payouts; the platform's own accounts, for
admins."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator

from agora.auth import AUTHORIZE, Admin, CurrentUser
from agora.contracts.types import AmountIn, CurrencyIn, RequestModel, check_minor_units
from agora.problems import ProblemError
from agora.services.payments import books, handlers, payouts
from agora.services.payments.deps import PaymentsServiceDep
from agora.services.payments.ledger import from_minor

StoreId = Annotated[str, Path(min_length=1, max_length=100)]

DESCRIBED = {
    **{code: value["description"] for code, value in AUTHORIZE.items()},
    400: "No Idempotency-Key header",
    404: "No payment for that order, or no such store (or not the caller's)",
    409: "More than the store has available (the problem says how much it has)",
    422: "Invalid request, or an Idempotency-Key first used for another payout",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problems a route answers, for its OpenAPI `responses`."""
    return {
        code: {"description": DESCRIBED[code], "content": {"application/problem+json": {}}}
        for code in codes
    }


class AttemptOut(BaseModel):
    kind: str
    outcome: str
    detail: str | None
    at: datetime


class EntryOut(BaseModel):
    account: str
    amount: str = Field(description="Positive on the debit side; a posting's entries sum to 0")


class PostingOut(BaseModel):
    id: str
    kind: str = Field(description="capture, fee or refund")
    currency: str
    posted_at: datetime
    entries: list[EntryOut]


class PaymentOut(BaseModel):
    id: str
    order_id: str
    amount: str
    currency: str
    state: str
    failure_reason: str | None
    refunded: str = Field(description="Refunded so far: all of it, or cancelled tickets' prices")
    attempts: list[AttemptOut]
    postings: list[PostingOut] = Field(description="What the payment posted to the ledger")


class BalanceOut(BaseModel):
    currency: str
    balance: str = Field(
        description="What the platform owes the store: sales less commission, refunds and payouts"
    )
    available: str = Field(description="What of the balance is past the holding period")


class StoreBalanceOut(BaseModel):
    store_id: str
    holding_days: float
    balances: list[BalanceOut] = Field(description="One per currency the store has sold in")


class StoreEntryOut(BaseModel):
    id: int = Field(description="The entry's number; pass the last one as `after` for the next")
    posted_at: datetime
    kind: str = Field(description="capture (a sale, less commission), refund or payout")
    order_id: str | None
    currency: str
    amount: str = Field(description="From the store's side: a sale is positive, a refund negative")


class StoreLedgerOut(BaseModel):
    store_id: str
    items: list[StoreEntryOut]
    next_after: int | None = Field(description="`after` for the next page; null on the last")


class AccountOut(BaseModel):
    account: str
    currency: str
    balance: str = Field(description="Positive on the debit side")


class PayoutIn(RequestModel):
    currency: CurrencyIn
    amount: AmountIn | None = Field(
        None, description="What to pay out; all that is available if absent"
    )

    @model_validator(mode="after")
    def _amount_in_currency(self) -> PayoutIn:
        if self.amount is not None:
            check_minor_units(self.amount, self.currency)
        return self


class PayoutOut(BaseModel):
    id: str
    store_id: str
    currency: str
    amount: str
    state: str = Field(description="PAYING (the provider's turn), PAID or FAILED")
    transfer_id: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payout: payouts.Payout) -> PayoutOut:
        return cls(
            id=payout.id,
            store_id=payout.store_id,
            currency=payout.currency,
            amount=str(from_minor(payout.amount, payout.currency)),
            state=payout.state,
            transfer_id=payout.transfer_id,
            failure_reason=payout.failure_reason,
            created_at=payout.created_at,
            updated_at=payout.updated_at,
        )


CSV_FIELDS = ("id", "posted_at", "kind", "order_id", "currency", "amount")


def build_router() -> APIRouter:
    router = APIRouter(tags=["payments"])

    @router.get(
        "/api/payments/{order_id}",
        response_model=PaymentOut,
        summary="The payment of an order, with every attempt at the provider and its postings",
        description="For the order's buyer and admins.",
        responses=problems(401, 404),
    )
    async def get_payment(
        service: PaymentsServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        caller: CurrentUser,
    ) -> PaymentOut:
        payment = await handlers.payment_of(service.platform.db, caller, order_id)
        postings = await books.postings_of(service.platform.db, payment.id)
        return PaymentOut(
            id=payment.id,
            order_id=payment.order_id,
            amount=str(payment.amount),
            currency=payment.currency,
            state=payment.state,
            failure_reason=payment.failure_reason,
            refunded=str(payment.refunded),
            attempts=[
                AttemptOut(kind=a.kind, outcome=a.outcome, detail=a.detail, at=a.at)
                for a in payment.attempts
            ],
            postings=[
                PostingOut(
                    id=posting.id,
                    kind=posting.kind,
                    currency=posting.currency,
                    posted_at=posting.posted_at,
                    entries=[
                        EntryOut(account=account, amount=str(from_minor(amount, posting.currency)))
                        for account, amount in posting.entries
                    ],
                )
                for posting in postings
            ],
        )

    @router.get(
        "/api/stores/{store_id}/balance",
        response_model=StoreBalanceOut,
        summary="What the platform owes a store's seller, per currency",
        description="For the store's seller and admins.",
        responses=problems(401, 404),
    )
    async def get_balance(
        service: PaymentsServiceDep, store_id: StoreId, caller: CurrentUser
    ) -> StoreBalanceOut:
        found = await books.store_balances(service.platform.db, caller, store_id, service.holding)
        return StoreBalanceOut(
            store_id=store_id,
            holding_days=service.holding.total_seconds() / 86_400,
            balances=[
                BalanceOut(
                    currency=currency,
                    balance=str(from_minor(balance, currency)),
                    available=str(from_minor(available, currency)),
                )
                for currency, balance, available in found
            ],
        )

    @router.get(
        "/api/stores/{store_id}/ledger",
        response_model=StoreLedgerOut,
        summary="A store's ledger entries, oldest first, a page at a time",
        description="For the store's seller and admins. `ledger.csv` has them all as CSV.",
        responses=problems(401, 404, 422),
    )
    async def get_ledger(
        service: PaymentsServiceDep,
        store_id: StoreId,
        caller: CurrentUser,
        after: Annotated[int, Query(ge=0, le=2**62, description="The last entry seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> StoreLedgerOut:
        db = service.platform.db
        items = await books.store_entries(db, caller, store_id, after=after, limit=limit)
        return StoreLedgerOut(
            store_id=store_id,
            items=[_store_entry(row) for row in items],
            next_after=items[-1].id if len(items) == limit else None,
        )

    @router.get(
        "/api/stores/{store_id}/ledger.csv",
        summary="A store's whole ledger as CSV",
        description="For the store's seller and admins. Columns: " + ", ".join(CSV_FIELDS) + ".",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}, **problems(401, 404)},
    )
    async def get_ledger_csv(
        service: PaymentsServiceDep, store_id: StoreId, caller: CurrentUser
    ) -> StreamingResponse:
        db = service.platform.db
        first = await books.store_entries(db, caller, store_id, after=0, limit=books.CSV_PAGE)

        async def lines() -> AsyncIterator[str]:
            yield _csv_line(CSV_FIELDS)
            page = first
            while page:
                for row in page:
                    entry = _store_entry(row)
                    yield _csv_line(
                        (
                            str(entry.id),
                            entry.posted_at.isoformat(),
                            entry.kind,
                            entry.order_id or "",
                            entry.currency,
                            entry.amount,
                        )
                    )
                if len(page) < books.CSV_PAGE:
                    return
                page = await books.store_entries(
                    db, caller, store_id, after=page[-1].id, limit=books.CSV_PAGE
                )

        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="ledger-{store_id}.csv"'},
        )

    @router.post(
        "/api/stores/{store_id}/payouts",
        status_code=201,
        response_model=PayoutOut,
        summary="Pay out a store's available balance to its seller",
        description="For the store's seller and admins. The amount (all that is available if "
        "absent) leaves the balance at once; the provider's transfer follows (`state`). The "
        "`Idempotency-Key` header is required: the same key answers 200 with the first payout "
        "and pays nothing more; with another currency or amount it is refused (422).",
        responses={
            200: {"model": PayoutOut, "description": "Replayed key: the first payout"},
            **problems(400, 401, 404, 409, 422),
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": "A unique value per payout: a retry with it pays nothing",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ]
        },
    )
    async def request_payout(
        service: PaymentsServiceDep,
        store_id: StoreId,
        body: PayoutIn,
        caller: CurrentUser,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=255, include_in_schema=False)
        ] = None,
    ) -> Response:
        if not idempotency_key:
            raise ProblemError(
                400,
                "idempotency-key-missing",
                "Idempotency-Key header required",
                "A payout needs an Idempotency-Key header (a unique value per payout).",
            )
        payout, created = await payouts.request_payout(
            service.unit_of_work,
            caller,
            store_id,
            body.currency,
            body.amount,
            idempotency_key,
            holding=service.holding,
            wake=service.wake_processor,
        )
        return Response(
            PayoutOut.of(payout).model_dump_json(),
            status_code=201 if created else 200,
            media_type="application/json",
        )

    @router.get(
        "/api/stores/{store_id}/payouts",
        response_model=list[PayoutOut],
        summary="A store's payouts, newest first",
        description="For the store's seller and admins.",
        responses=problems(401, 404, 422),
    )
    async def list_payouts(
        service: PaymentsServiceDep,
        store_id: StoreId,
        caller: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[PayoutOut]:
        found = await payouts.payouts_of(service.platform.db, caller, store_id, limit)
        return [PayoutOut.of(payout) for payout in found]

    @router.get(
        "/api/ledger/accounts",
        response_model=list[AccountOut],
        summary="The platform's own accounts and their balances (admins)",
        description="The provider's clearing account, commission, fees and the platform's own "
        "sales; stores' accounts are read by store.",
        responses=problems(401, 403),
    )
    async def get_accounts(service: PaymentsServiceDep, _caller: Admin) -> list[AccountOut]:
        rows = await books.platform_accounts(service.platform.db)
        return [
            AccountOut(
                account=account, currency=currency, balance=str(from_minor(balance, currency))
            )
            for account, currency, balance in rows
        ]

    return router


def _store_entry(row: books.StoreEntry) -> StoreEntryOut:
    return StoreEntryOut(
        id=row.id,
        posted_at=row.posted_at,
        kind=row.kind,
        order_id=row.order_id,
        currency=row.currency,
        amount=str(from_minor(-row.amount, row.currency)),
    )


def _csv_line(fields: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(fields)
    return out.getvalue()
