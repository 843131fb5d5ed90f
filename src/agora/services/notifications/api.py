"""Notifications' HTTP API: the messages sent to a customer (the local mailbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

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


def build_router(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/notifications", tags=["notifications"])

    @router.get("", response_model=MessagesOut, summary="Messages sent to a customer, oldest first")
    async def list_messages(
        customer_id: Annotated[str, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> MessagesOut:
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
