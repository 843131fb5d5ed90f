"""Inventory's rules and values, without I/O: a product's stock level and who may see it."""

from __future__ import annotations

import dataclasses

from agora.problems import NotFound

__all__ = ["ProductNotFound", "StockLevel"]


@dataclasses.dataclass(frozen=True, slots=True)
class StockLevel:
    """A product's units: `available` to order, `reserved` by holds, `sold`. Conserved: their
    sum only grows when stock is added."""

    product_id: str
    seller_id: str | None
    available: int
    reserved: int
    sold: int


class ProductNotFound(NotFound):
    def __init__(self, product_id: str) -> None:
        super().__init__("product-not-found", "Product not found", f"no stock for {product_id}")
