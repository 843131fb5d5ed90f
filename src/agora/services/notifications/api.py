"""Notifications' HTTP API: the messages sent to a customer (the local mailbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row

from agora.auth import AUTHORIZE, CurrentUser
from agora.problems import ProblemError
from agora.services.notifications import handlers
from agora.services.notifications.deps import NotificationsServiceDep
from agora.services.notifications.repository import mail_of


class AttachmentOut(BaseModel):
    filename: str = Field(examples=["ticket-0193a1b2-0000-7000-8000-000000000001.png"])
    content_type: Literal["image/png"]


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
    attachments: list[AttachmentOut] = Field(
        description="What is attached to the email: a ticket's QR code (a PNG, shown in the "
        "email's HTML part too); the other messages have none"
    )

    @classmethod
    def of(cls, row: Row[Any]) -> MessageOut:
        qr = mail_of(row).ticket_qr
        attachments = (
            []
            if qr is None
            else [AttachmentOut(filename=qr.filename, content_type=qr.content_type)]
        )
        return cls.model_validate({**row._mapping, "attachments": attachments})


class MessagesOut(BaseModel):
    items: list[MessageOut]
    page: int
    page_size: int
    total: int


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
        page: Annotated[int, Query(ge=1, le=10_000, description="1-based page number")] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> MessagesOut:
        try:
            rows, total = await handlers.list_messages(
                service.platform.db,
                caller,
                caller.user_id if customer_id is None else customer_id,
                page=page,
                page_size=page_size,
            )
        except handlers.NotYourMessages:
            raise ProblemError(
                403,
                "forbidden",
                "Forbidden",
                "only an admin may read another customer's messages",
            ) from None
        return MessagesOut(
            items=[MessageOut.of(row) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    return router
