"""Catalog's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy.engine import Row

from agora.contracts.types import AmountIn, CurrencyIn, RequestModel, check_minor_units

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5_000)]
Id = Annotated[str, Path(min_length=1, max_length=100)]
Sort = Literal["relevance", "newest", "price", "-price", "rating", "name"]


class StoreIn(RequestModel):
    name: Name
    description: Description = ""


class StoreChangesIn(RequestModel):
    name: Name | None = None
    description: Description | None = None


class StoreOut(BaseModel):
    id: str
    seller_id: str | None
    name: str
    description: str
    created_at: datetime


class StoresOut(BaseModel):
    items: list[StoreOut]
    page: int
    page_size: int
    total: int


class ProductIn(RequestModel):
    name: Name
    description: Description = ""
    price: AmountIn
    currency: CurrencyIn
    initial_stock: int = Field(ge=0, le=10_000_000)

    @model_validator(mode="after")
    def _price_in_minor_units(self) -> ProductIn:
        check_minor_units(self.price, self.currency)
        return self


class ProductChangesIn(RequestModel):
    """A new price is checked against the product's currency where the product is known."""

    name: Name | None = None
    description: Description | None = None
    price: AmountIn | None = None
    listed: bool | None = None


class ProductOut(BaseModel):
    id: str
    store_id: str | None
    seller_id: str | None
    name: str
    description: str
    price: str
    currency: str
    available: int
    listed: bool
    rating: float | None = Field(description="Average review rating, 1 to 5; null if none")
    review_count: int
    created_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> ProductOut:
        return cls(
            id=row.id,
            store_id=row.store_id,
            seller_id=row.seller_id,
            name=row.name,
            description=row.description,
            price=str(row.price),
            currency=row.currency,
            available=row.available,
            listed=row.listed,
            rating=round(row.rating_sum / row.rating_count, 2) if row.rating_count else None,
            review_count=row.rating_count,
            created_at=row.created_at,
        )


class ProductsOut(BaseModel):
    items: list[ProductOut]
    page: int
    page_size: int
    total: int


class ReviewIn(RequestModel):
    rating: int = Field(ge=1, le=5)
    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000)] = ""


class ReviewOut(BaseModel):
    id: str
    product_id: str
    buyer_id: str
    rating: int
    text: str
    created_at: datetime


class ReviewsOut(BaseModel):
    items: list[ReviewOut]
    page: int
    page_size: int
    total: int


Page = Annotated[int, Query(ge=1, le=10_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=100)]
