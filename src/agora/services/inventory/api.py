"""Inventory's HTTP API: stock levels, for operators and for checks of conservation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import select

from agora.auth import AUTHORIZE, SellerOrAdmin
from agora.problems import ProblemError
from agora.services.inventory.deps import InventoryServiceDep
from agora.services.inventory.store import stock


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
        async with service.platform.db.read() as conn:
            row = (
                await conn.execute(select(stock).where(stock.c.product_id == product_id))
            ).first()
        if row is not None and caller.role != "admin" and row.seller_id != caller.user_id:
            row = None
        if row is None:
            raise ProblemError(
                404, "product-not-found", "Product not found", f"no stock for {product_id}"
            )
        return StockOut(
            product_id=row.product_id, available=row.available, reserved=row.reserved, sold=row.sold
        )

    return router
