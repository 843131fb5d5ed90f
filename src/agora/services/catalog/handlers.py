"""Catalog's use cases: sellers' stores and products, reviews by buyers who bought, and the read
models kept from other services' events (availability from inventory, purchases from orders)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import Principal
from agora.contracts.catalog import ListingChanged, PriceChanged, ProductListed
from agora.contracts.inventory import AvailabilityChanged
from agora.contracts.orders import OrderConfirmed
from agora.contracts.types import Amount, Currency, check_minor_units
from agora.messaging import Database, Event, Handler, UnitOfWork, insert_new, new_id, utcnow
from agora.problems import NotFound, ProblemError
from agora.services.catalog import search
from agora.services.catalog.store import (
    CatalogUnitOfWork,
    Page,
    products,
    purchases,
    review_by_id,
    reviews,
    reviews_page,
    store_products_page,
    stores,
    stores_page,
)

DEMO_STORE = "demo"


class SeedProduct(BaseModel):
    """One product of a seed catalog file (a JSON list of these)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    price: Amount
    currency: Currency
    stock: int = Field(ge=0)


DEMO_CATALOG: tuple[SeedProduct, ...] = (
    SeedProduct(
        id="espresso-beans",
        name="Espresso beans, 1 kg",
        description="Dark roast for espresso machines.",
        price=Decimal("24.90"),
        currency="EUR",
        stock=500,
    ),
    SeedProduct(
        id="pour-over-kettle",
        name="Pour-over kettle",
        description="Gooseneck kettle, 1 litre.",
        price=Decimal("49.00"),
        currency="EUR",
        stock=120,
    ),
    SeedProduct(
        id="ceramic-dripper",
        name="Ceramic dripper",
        description="Cone dripper for filter coffee.",
        price=Decimal("19.50"),
        currency="EUR",
        stock=200,
    ),
    SeedProduct(
        id="burr-grinder",
        name="Burr grinder",
        description="Conical burrs, 40 settings.",
        price=Decimal("129.00"),
        currency="EUR",
        stock=40,
    ),
)


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


@dataclasses.dataclass(frozen=True, slots=True)
class NewProduct:
    name: str
    description: str
    price: Decimal
    currency: str
    initial_stock: int


@dataclasses.dataclass(frozen=True, slots=True)
class ProductChanges:
    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    listed: bool | None = None


def may_manage(principal: Principal | None, seller_id: str | None) -> bool:
    """A store's seller manages it and its products; an admin manages every store."""
    if principal is None:
        return False
    return principal.role == "admin" or (
        principal.role == "seller" and seller_id is not None and principal.user_id == seller_id
    )


async def _list(
    uow: UnitOfWork, store_id: str, seller_id: str | None, product_id: str, item: NewProduct
) -> None:
    await uow.conn.execute(
        insert(products).values(
            id=product_id,
            store_id=store_id,
            seller_id=seller_id,
            name=item.name,
            description=item.description,
            price=item.price,
            currency=item.currency,
            available=0,
            listed=True,
            rating_sum=0,
            rating_count=0,
            created_at=utcnow(),
        )
    )
    await search.index(uow.conn, product_id, item.name, item.description)
    uow.emit(
        ProductListed(
            product_id=product_id,
            name=item.name,
            price=item.price,
            currency=item.currency,
            initial_stock=item.initial_stock,
            store_id=store_id,
            seller_id=seller_id,
        )
    )


async def seed_catalog(uow: UnitOfWork, seed: Sequence[SeedProduct]) -> int:
    """List `seed` in the demo store if the catalog is empty (first start); returns how many.

    Replicas starting together may both find it empty: the second's insert then violates the
    primary key and rolls back (IntegrityError), which the caller takes as "seeded already"."""
    if await uow.conn.scalar(select(func.count()).select_from(stores)):
        return 0
    await uow.conn.execute(
        insert(stores).values(
            id=DEMO_STORE,
            seller_id=None,
            name="Agora demo store",
            description="The catalog a fresh installation starts with.",
            created_at=utcnow(),
        )
    )
    for item in seed:
        new = NewProduct(item.name, item.description, item.price, item.currency, item.stock)
        await _list(uow, DEMO_STORE, None, item.id, new)
    return len(seed)


async def create_store(uow: UnitOfWork, seller: Principal, name: str, description: str) -> str:
    store_id = new_id()
    await uow.conn.execute(
        insert(stores).values(
            id=store_id,
            seller_id=seller.user_id,
            name=name,
            description=description,
            created_at=utcnow(),
        )
    )
    return store_id


async def load_store(conn: AsyncConnection, store_id: str) -> Row[Any]:
    row = (await conn.execute(select(stores).where(stores.c.id == store_id))).first()
    if row is None:
        raise StoreNotFound(store_id)
    return row


async def update_store(
    uow: UnitOfWork, caller: Principal, store_id: str, name: str | None, description: str | None
) -> None:
    store = await load_store(uow.conn, store_id)
    if not may_manage(caller, store.seller_id):
        raise NotYours(f"store {store_id} belongs to another seller")
    values = {
        key: value
        for key, value in (("name", name), ("description", description))
        if value is not None
    }
    if values:
        await uow.conn.execute(update(stores).where(stores.c.id == store_id).values(**values))


async def list_product(uow: UnitOfWork, caller: Principal, store_id: str, item: NewProduct) -> str:
    store = await load_store(uow.conn, store_id)
    if not may_manage(caller, store.seller_id):
        raise NotYours(f"store {store_id} belongs to another seller")
    product_id = new_id()
    await _list(uow, store_id, store.seller_id, product_id, item)
    return product_id


async def load_product(conn: AsyncConnection, product_id: str) -> Row[Any]:
    row = (await conn.execute(select(products).where(products.c.id == product_id))).first()
    if row is None:
        raise ProductNotFound(product_id)
    return row


def may_see(caller: Principal | None, product: Row[Any]) -> bool:
    """Listed products are public; an unlisted one only to who manages it."""
    return bool(product.listed) or may_manage(caller, product.seller_id)


async def change_product(
    uow: UnitOfWork, caller: Principal, product_id: str, changes: ProductChanges
) -> None:
    product = await load_product(uow.conn, product_id)
    if not may_see(caller, product):
        raise ProductNotFound(product_id)
    if not may_manage(caller, product.seller_id):
        raise NotYours(f"product {product_id} belongs to another seller")
    values: dict[str, Any] = {}
    if changes.name is not None and changes.name != product.name:
        values["name"] = changes.name
    if changes.description is not None and changes.description != product.description:
        values["description"] = changes.description
    if changes.price is not None and changes.price != product.price:
        try:
            check_minor_units(changes.price, product.currency)
        except ValueError as error:
            raise ProblemError(
                422, "validation-error", "Invalid request", f"body.price: {error}"
            ) from None
        values["price"] = changes.price
        uow.emit(
            PriceChanged(product_id=product_id, price=changes.price, currency=product.currency)
        )
    if changes.listed is not None and changes.listed != product.listed:
        values["listed"] = changes.listed
        uow.emit(ListingChanged(product_id=product_id, listed=changes.listed))
    if not values:
        return
    await uow.conn.execute(update(products).where(products.c.id == product_id).values(**values))
    if "name" in values or "description" in values:
        await search.index(
            uow.conn,
            product_id,
            values.get("name", product.name),
            values.get("description", product.description),
        )


async def add_review(
    uow: UnitOfWork, buyer: Principal, product_id: str, rating: int, text: str
) -> str:
    product = await load_product(uow.conn, product_id)
    if not may_see(buyer, product):
        raise ProductNotFound(product_id)
    bought = await uow.conn.scalar(
        select(func.count())
        .select_from(purchases)
        .where(purchases.c.buyer_id == buyer.user_id, purchases.c.product_id == product_id)
    )
    if not bought:
        raise NotAPurchaser(f"no confirmed order of {product_id} by this buyer")
    review_id = new_id()
    try:
        async with uow.conn.begin_nested():
            await uow.conn.execute(
                insert(reviews).values(
                    id=review_id,
                    product_id=product_id,
                    buyer_id=buyer.user_id,
                    rating=rating,
                    text=text,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise AlreadyReviewed(f"this buyer has reviewed {product_id} already") from None
    await uow.conn.execute(
        update(products)
        .where(products.c.id == product_id)
        .values(
            rating_sum=products.c.rating_sum + rating,
            rating_count=products.c.rating_count + 1,
        )
    )
    return review_id


# -- other services' events ---------------------------------------------------------------


SET_AVAILABLE = update(products).where(products.c.id == bindparam("product_id"))


async def on_availability_changed(event: AvailabilityChanged, uow: CatalogUnitOfWork) -> None:
    uow.changed_products.add(event.product_id)
    await uow.conn.execute(
        SET_AVAILABLE, {"product_id": event.product_id, "available": event.available}
    )


async def on_order_confirmed(event: OrderConfirmed, uow: UnitOfWork) -> None:
    """Who bought what: the right to review it."""
    bought = sorted({line.product_id for line in event.lines})
    if bought:  # a purchase already recorded (an earlier order of the product) is kept
        await uow.conn.execute(
            insert_new(purchases, uow.conn.dialect.name),
            [
                {"buyer_id": event.customer_id, "product_id": p, "order_id": event.order_id}
                for p in bought
            ],
        )


HANDLERS: Mapping[type[Event], Handler[Any]] = {
    AvailabilityChanged: on_availability_changed,
    OrderConfirmed: on_order_confirmed,
}


# -- reads -----------------------------------------------------------------------------------


async def read_store(db: Database, store_id: str) -> Row[Any]:
    async with db.read() as conn:
        return await load_store(conn, store_id)


async def list_stores(db: Database, seller_id: str | None, page: int, page_size: int) -> Page:
    async with db.read() as conn:
        return await stores_page(conn, seller_id, page, page_size)


async def list_store_products(
    db: Database, caller: Principal | None, store_id: str, page: int, page_size: int
) -> Page:
    """A store's products: unlisted ones too for who manages the store."""
    async with db.read() as conn:
        found = await load_store(conn, store_id)
        return await store_products_page(
            conn,
            store_id,
            listed_only=not may_manage(caller, found.seller_id),
            page=page,
            page_size=page_size,
        )


async def search_products(
    db: Database,
    words: list[str],
    *,
    store_id: str | None,
    min_price: Decimal | None,
    max_price: Decimal | None,
    order: str,
    page: int,
    page_size: int,
) -> Page:
    async with db.read() as conn:
        return await search.search_page(
            conn,
            words,
            store_id=store_id,
            min_price=min_price,
            max_price=max_price,
            order=order,
            page=page,
            page_size=page_size,
        )


async def list_reviews(db: Database, product_id: str, page: int, page_size: int) -> Page:
    async with db.read() as conn:
        return await reviews_page(conn, product_id, page, page_size)


async def read_review(db: Database, review_id: str) -> Row[Any]:
    async with db.read() as conn:
        return await review_by_id(conn, review_id)
