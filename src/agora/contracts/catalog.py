"""Events of the catalog: what is for sale, at what price."""

from typing import ClassVar

from agora.contracts.types import Amount, Currency
from agora.messaging import Event

__all__ = ["ListingChanged", "PriceChanged", "ProductListed", "StoreOpened"]


class _CatalogEvent(Event):
    topic: ClassVar[str] = "catalog"
    key_field: ClassVar[str] = "product_id"


class ProductListed(_CatalogEvent):
    product_id: str
    name: str
    price: Amount
    currency: Currency
    initial_stock: int
    store_id: str | None = None
    seller_id: str | None = None


class PriceChanged(_CatalogEvent):
    product_id: str
    price: Amount
    currency: Currency


class ListingChanged(_CatalogEvent):
    """The seller unlisted the product (no new orders) or listed it again."""

    product_id: str
    listed: bool


class StoreOpened(Event):
    """A seller opened a store (the demo store has no seller): other contexts that sell in
    stores (ticketing) learn who owns it."""

    topic: ClassVar[str] = "catalog"
    key_field: ClassVar[str] = "store_id"

    store_id: str
    seller_id: str | None
    name: str
