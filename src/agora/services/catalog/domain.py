"""Catalog's rules and values, without I/O: stores and products as handlers see them, who may
manage or see them, and the problems their use cases refuse with."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from agora.auth import Principal, may_manage
from agora.problems import NotFound, ProblemError

__all__ = [
    "AlreadyReviewed",
    "NewProduct",
    "NotAPurchaser",
    "NotYours",
    "Product",
    "ProductChanges",
    "ProductNotFound",
    "Store",
    "StoreNotFound",
    "may_manage",
    "may_see",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Store:
    id: str
    seller_id: str | None
    name: str
    description: str


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """A product's fields that its rules read (availability and ratings are read models)."""

    id: str
    store_id: str | None
    seller_id: str | None
    name: str
    description: str
    price: Decimal
    currency: str
    listed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class NewProduct:
    name: str
    description: str
    price: Decimal
    currency: str
    initial_stock: int


@dataclasses.dataclass(frozen=True, slots=True)
class ProductChanges:
    """Fields to set; None leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    listed: bool | None = None


def may_see(caller: Principal | None, product: Product) -> bool:
    """Listed products are public; an unlisted one only to who manages it."""
    return product.listed or may_manage(caller, product.seller_id)


class StoreNotFound(NotFound):
    def __init__(self, store_id: str) -> None:
        super().__init__("store-not-found", "Store not found", f"no store {store_id}")


class ProductNotFound(NotFound):
    def __init__(self, product_id: str) -> None:
        super().__init__("product-not-found", "Product not found", f"no product {product_id}")


class NotYours(ProblemError):
    """The caller may not change another seller's store or product."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "not-your-store", "Not your store", detail)


class NotAPurchaser(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "not-a-purchaser", "Only buyers of the product may review it", detail)


class AlreadyReviewed(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(409, "already-reviewed", "Already reviewed", detail)
