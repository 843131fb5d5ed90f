"""Notifications' HTTP API: the messages sent to a customer (the local mailbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from agora.auth import AUTHORIZE, CurrentUser
from agora.problems import ProblemError
from agora.services.notifications.deps import NotificationsServiceDep
from agora.services.notifications.store import messages


class MessageOut(BaseModel):
    id: str
    customer_id: str
    order_id: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class MessagesOut(BaseModel):
    items: list[MessageOut]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/notifications", tags=["notifications"])

    @router.get(
        "",
        response_model=MessagesOut,
        summary="Messages sent to the caller, oldest first",
        description="An admin may read any customer's with `customer_id`.",
        responses=AUTHORIZE,
    )
    async def list_messages(
        service: NotificationsServiceDep,
        caller: CurrentUser,
        customer_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> MessagesOut:
        if customer_id is None:
            customer_id = caller.user_id
        elif customer_id != caller.user_id and caller.role != "admin":
            raise ProblemError(
                403,
                "forbidden",
                "Forbidden",
                "only an admin may read another customer's messages",
            )
        async with service.platform.db.read() as conn:
            rows = (
                await conn.execute(
                    select(messages)
                    .where(messages.c.customer_id == customer_id)
                    .order_by(messages.c.created_at, messages.c.id)
                    .limit(limit)
                )
            ).all()
        return MessagesOut(items=[MessageOut.model_validate(row._mapping) for row in rows])

    return router
