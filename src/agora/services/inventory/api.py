"""Inventory's HTTP API: stock levels, for operators and for checks of conservation, and each
session's seat map, for buyers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel

from agora.auth import AUTHORIZE, SellerOrAdmin
from agora.contracts.seating import SeatingPlan
from agora.messaging import utcnow
from agora.services.inventory import handlers
from agora.services.inventory.deps import InventoryServiceDep
from agora.services.inventory.domain import SeatMap
from agora.web import entity_tags

SEAT_STATES: dict[str, Literal["available", "held", "sold"]] = {
    "FREE": "available",
    "HELD": "held",
    "SOLD": "sold",
}


class StockOut(BaseModel):
    product_id: str
    available: int
    reserved: int
    sold: int


class AreaOut(BaseModel):
    capacity: int
    available: int


class SalesOut(BaseModel):
    open: bool
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None


class SeatMapOut(BaseModel):
    session_id: str
    event_id: str
    version: int
    sales: SalesOut
    plan: SeatingPlan
    seats: dict[str, Literal["available", "held", "sold"]]
    areas: dict[str, AreaOut]


def represent(found: SeatMap) -> bytes:
    """The map's JSON, the plan spliced in as stored (not parsed and re-rendered per request:
    a plan of 10,000 seats is most of the answer)."""
    window = found.window
    head = orjson.dumps(
        {
            "session_id": found.session_id,
            "event_id": found.event_id,
            "version": found.version,
            "sales": {
                "open": window.is_open(utcnow()),
                "opens_at": window.opens_at,
                "closes_at": window.closes_at,
            },
            "seats": {seat: SEAT_STATES[state] for seat, state in found.seats.items()},
            "areas": {
                area: {"capacity": places.capacity, "available": places.available}
                for area, places in found.areas.items()
            },
        }
    )
    return head[:-1] + b',"plan":' + found.plan_json.encode() + b"}"


def build_router() -> APIRouter:
    router = APIRouter(tags=["inventory"])

    @router.get(
        "/api/sessions/{session_id}/seats",
        response_model=SeatMapOut,
        summary="A session's seat map: the plan, every seat's state, free places per area",
        description=(
            "Public. `version` grows with every change of the session's places; the `ETag` is "
            "the version, so `If-None-Match` with it answers 304 while nothing changed."
        ),
        responses={
            304: {"description": "Unchanged (the `If-None-Match` tag is current)"},
            404: {"description": "Unknown session"},
        },
    )
    async def get_seat_map(
        service: InventoryServiceDep,
        session_id: Annotated[str, Path(max_length=100)],
        if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=1000)] = None,
    ) -> Response:
        found = await handlers.seat_map_of(service.platform.db, session_id)
        etag = f'"{found.version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        known = entity_tags(if_none_match)
        if etag in known or "*" in known:
            return Response(status_code=304, headers=headers)
        return Response(represent(found), headers=headers, media_type="application/json")

    @router.get(
        "/api/stock/{product_id}",
        response_model=StockOut,
        summary="Stock of a product: available, held for orders, and sold",
        description="For the product's seller and admins (buyers see `available` on the product).",
        responses={404: {"description": "Unknown product"}, **AUTHORIZE},
    )
    async def get_stock(
        service: InventoryServiceDep,
        product_id: Annotated[str, Path(max_length=100)],
        caller: SellerOrAdmin,
    ) -> StockOut:
        level = await handlers.stock_of(service.platform.db, caller, product_id)
        return StockOut(
            product_id=level.product_id,
            available=level.available,
            reserved=level.reserved,
            sold=level.sold,
        )

    return router
