"""Payments' HTTP API: a payment and its attempts, by order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import select

from agora.auth import AUTHORIZE, CurrentUser
from agora.problems import ProblemError
from agora.services.payments.deps import PaymentsServiceDep
from agora.services.payments.store import attempts, payments


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
        async with service.platform.db.read() as conn:
            row = (
                await conn.execute(select(payments).where(payments.c.order_id == order_id))
            ).first()
            if row is not None and caller.role != "admin" and row.customer_id != caller.user_id:
                row = None
            tries = (
                []
                if row is None
                else (
                    await conn.execute(
                        select(attempts)
                        .where(attempts.c.payment_id == row.id)
                        .order_by(attempts.c.at, attempts.c.id)
                    )
                ).all()
            )
        if row is None:
            raise ProblemError(
                404, "payment-not-found", "Payment not found", f"no payment for order {order_id}"
            )
        return PaymentOut(
            id=row.id,
            order_id=row.order_id,
            amount=str(row.amount),
            currency=row.currency,
            state=row.state,
            failure_reason=row.failure_reason,
            attempts=[
                AttemptOut(kind=a.kind, outcome=a.outcome, detail=a.detail, at=a.at) for a in tries
            ],
        )

    return router
