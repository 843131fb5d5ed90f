"""Inventory's HTTP API: stock levels, for operators and for checks of conservation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from agora.auth import AUTHORIZE, SellerOrAdmin
from agora.services.inventory import handlers
from agora.services.inventory.deps import InventoryServiceDep


class StockOut(BaseModel):
    product_id: str
    available: int
    reserved: int
    sold: int


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/stock", tags=["inventory"])

    @router.get(
        "/{product_id}",
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
