"""Analytics' HTTP API: an order's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from agora.auth import AUTHORIZE, CurrentUser
from agora.services.analytics import handlers
from agora.services.analytics.deps import AnalyticsServiceDep


class TimelineEntry(BaseModel):
    event_id: str
    type: str
    source: str
    occurred_at: datetime
    causation_id: str | None


class TimelineOut(BaseModel):
    order_id: str
    events: list[TimelineEntry]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/orders", tags=["orders"])

    @router.get(
        "/{order_id}/timeline",
        response_model=TimelineOut,
        summary="Every event of the order's saga, in order",
        description="For the order's buyer and admins.",
        responses={404: {"description": "No event of that order has been seen"}, **AUTHORIZE},
    )
    async def timeline(
        service: AnalyticsServiceDep,
        order_id: Annotated[str, Path(max_length=100)],
        caller: CurrentUser,
    ) -> TimelineOut:
        rows = await handlers.order_timeline(service.platform.db, caller, order_id)
        return TimelineOut(
            order_id=order_id,
            events=[TimelineEntry.model_validate(row._mapping) for row in rows],
        )

    return router
