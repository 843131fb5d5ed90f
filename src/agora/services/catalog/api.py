"""Catalog's HTTP API: products for sale."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.engine import Row

from agora.problems import ProblemError
from agora.services.catalog.store import products


class ProductOut(BaseModel):
    id: str
    name: str
    description: str
    price: str
    currency: str
    available: int

    @classmethod
    def of(cls, row: Row[Any]) -> ProductOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            price=str(row.price),
            currency=row.currency,
            available=row.available,
        )


class ProductsOut(BaseModel):
    items: list[ProductOut]


def build_router(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/products", tags=["catalog"])

    @router.get("", response_model=ProductsOut, summary="Products for sale")
    async def list_products(
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> ProductsOut:
        async with service.platform.db.read() as conn:
            rows = (
                await conn.execute(
                    select(products).order_by(products.c.id).limit(limit).offset(offset)
                )
            ).all()
        return ProductsOut(items=[ProductOut.of(row) for row in rows])

    @router.get(
        "/{product_id}",
        response_model=ProductOut,
        summary="One product",
        responses={404: {"description": "Unknown product"}},
    )
    async def get_product(product_id: Annotated[str, Path(max_length=100)]) -> ProductOut:
        async with service.platform.db.read() as conn:
            row = (await conn.execute(select(products).where(products.c.id == product_id))).first()
        if row is None:
            raise ProblemError(
                404, "product-not-found", "Product not found", f"no product {product_id}"
            )
        return ProductOut.of(row)

    return router
