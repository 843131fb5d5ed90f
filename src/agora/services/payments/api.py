"""Payments' HTTP API: a payment and its attempts, by order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from agora.auth import AUTHORIZE, CurrentUser
from agora.services.payments import handlers
from agora.services.payments.deps import PaymentsServiceDep


class AttemptOut(BaseModel):
    kind: str
    outcome: str
    detail: str | None
    at: datetime


class PaymentOut(BaseModel):
    id: str
    order_id: str
    amount: str
    currency: str
    state: str
    failure_reason: str | None
    refunded: str = Field(description="Refunded so far: all of it, or cancelled tickets' prices")
    attempts: list[AttemptOut]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/payments", tags=["payments"])

    @router.get(
        "/{order_id}",
        response_model=PaymentOut,
        summary="The payment of an order, with every attempt at the provider",
        description="For the order's buyer and admins.",
        responses={404: {"description": "No payment for that order"}, **AUTHORIZE},
    )
    async def get_payment(
        service: PaymentsServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        caller: CurrentUser,
    ) -> PaymentOut:
        payment = await handlers.payment_of(service.platform.db, caller, order_id)
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
        )

    return router
