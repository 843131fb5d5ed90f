"""Catalog's use cases: sellers' stores and products, reviews by buyers who bought, and the read
models kept from other services' events (availability from inventory, purchases from orders).
Handlers work through the unit of work's repositories (`uow.stores`, `uow.products`,
`uow.reviews`) and emit; they never write SQL themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import Principal
from agora.contracts.catalog import ListingChanged, PriceChanged, ProductListed, StoreOpened
from agora.contracts.inventory import AvailabilityChanged
from agora.contracts.orders import OrderConfirmed
from agora.contracts.types import check_minor_units
from agora.messaging import Database, Event, Handler, new_id
from agora.problems import ProblemError
from agora.services.catalog.domain import (
    AlreadyReviewed,
    NewProduct,
    NotAPurchaser,
    NotYours,
    Product,
    ProductChanges,
    ProductNotFound,
    Store,
    StoreNotFound,
    may_manage,
    may_see,
)
from agora.services.catalog.repository import CatalogUnitOfWork
from agora.services.catalog.seed import DEMO_STORE, SeedProduct
from agora.services.catalog.store import (
    Page,
    review_by_id,
    reviews_page,
    store_by_id,
    store_products_page,
    stores_page,
)

# -- stores ------------------------------------------------------------------------------------


async def create_store(
    uow: CatalogUnitOfWork, seller: Principal, name: str, description: str
) -> str:
    store_id = new_id()
    await _open(uow, Store(store_id, seller.user_id, name, description))
    return store_id


async def announce_stores(uow: CatalogUnitOfWork, limit: int = 500) -> int:
    """`StoreOpened` for up to `limit` stores opened before the event existed (so that the
    contexts that learn stores from it, ticketing among them, know them too); returns how
    many."""
    found = await uow.stores.unannounced(limit)
    for store in found:
        uow.emit(StoreOpened(store_id=store.id, seller_id=store.seller_id, name=store.name))
    if found:
        await uow.stores.mark_announced([store.id for store in found])
    return len(found)


async def _open(uow: CatalogUnitOfWork, store: Store) -> None:
    await uow.stores.add(store)
    uow.emit(StoreOpened(store_id=store.id, seller_id=store.seller_id, name=store.name))


async def _managed_store(uow: CatalogUnitOfWork, caller: Principal, store_id: str) -> Store:
    store = await uow.stores.get(store_id)
    if store is None:
        raise StoreNotFound(store_id)
    if not may_manage(caller, store.seller_id):
        raise NotYours(f"store {store_id} belongs to another seller")
    return store


async def update_store(
    uow: CatalogUnitOfWork,
    caller: Principal,
    store_id: str,
    name: str | None,
    description: str | None,
) -> None:
    await _managed_store(uow, caller, store_id)
    if name is not None or description is not None:
        await uow.stores.change(store_id, name=name, description=description)


# -- products ----------------------------------------------------------------------------------


async def _list(
    uow: CatalogUnitOfWork, store_id: str, seller_id: str | None, product_id: str, item: NewProduct
) -> None:
    await uow.products.add(product_id, store_id, seller_id, item)
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


async def seed_catalog(uow: CatalogUnitOfWork, seed: Sequence[SeedProduct]) -> int:
    """List `seed` in the demo store if the catalog is empty (first start); returns how many.

    Replicas starting together may both find it empty: the second's insert then violates the
    primary key and rolls back (IntegrityError), which the caller takes as "seeded already"."""
    if await uow.stores.any():
        return 0
    demo = Store(
        DEMO_STORE, None, "Agora demo store", "The catalog a fresh installation starts with."
    )
    await _open(uow, demo)
    for item in seed:
        new = NewProduct(item.name, item.description, item.price, item.currency, item.stock)
        await _list(uow, DEMO_STORE, None, item.id, new)
    return len(seed)


async def list_product(
    uow: CatalogUnitOfWork, caller: Principal, store_id: str, item: NewProduct
) -> str:
    store = await _managed_store(uow, caller, store_id)
    product_id = new_id()
    await _list(uow, store_id, store.seller_id, product_id, item)
    return product_id


async def _visible_product(
    uow: CatalogUnitOfWork, caller: Principal | None, product_id: str
) -> Product:
    product = await uow.products.get(product_id)
    if product is None or not may_see(caller, product):
        raise ProductNotFound(product_id)
    return product


async def change_product(
    uow: CatalogUnitOfWork, caller: Principal, product_id: str, changes: ProductChanges
) -> None:
    product = await _visible_product(uow, caller, product_id)
    if not may_manage(caller, product.seller_id):
        raise NotYours(f"product {product_id} belongs to another seller")
    new = ProductChanges(
        name=changes.name if changes.name != product.name else None,
        description=changes.description if changes.description != product.description else None,
        price=changes.price if changes.price != product.price else None,
        listed=changes.listed if changes.listed != product.listed else None,
    )
    if new.price is not None:
        try:
            check_minor_units(new.price, product.currency)
        except ValueError as error:
            raise ProblemError(
                422, "validation-error", "Invalid request", f"body.price: {error}"
            ) from None
        uow.emit(PriceChanged(product_id=product_id, price=new.price, currency=product.currency))
    if new.listed is not None:
        uow.emit(ListingChanged(product_id=product_id, listed=new.listed))
    if new != ProductChanges():
        await uow.products.change(product_id, new)


# -- reviews -----------------------------------------------------------------------------------


async def add_review(
    uow: CatalogUnitOfWork, buyer: Principal, product_id: str, rating: int, text: str
) -> str:
    await _visible_product(uow, buyer, product_id)
    if not await uow.reviews.has_bought(buyer.user_id, product_id):
        raise NotAPurchaser(f"no confirmed order of {product_id} by this buyer")
    review_id = new_id()
    if not await uow.reviews.add(review_id, product_id, buyer.user_id, rating, text):
        raise AlreadyReviewed(f"this buyer has reviewed {product_id} already")
    await uow.products.rate(product_id, rating)
    return review_id


# -- other services' events --------------------------------------------------------------------


async def on_availability_changed(event: AvailabilityChanged, uow: CatalogUnitOfWork) -> None:
    uow.changed_products.add(event.product_id)
    await uow.products.set_available(event.product_id, event.available)


async def on_order_confirmed(event: OrderConfirmed, uow: CatalogUnitOfWork) -> None:
    """Who bought what: the right to review it."""
    bought = [line.product_id for line in event.lines]
    await uow.reviews.record_purchases(event.customer_id, event.order_id, bought)


HANDLERS: Mapping[type[Event], Handler[CatalogUnitOfWork]] = {
    AvailabilityChanged: on_availability_changed,
    OrderConfirmed: on_order_confirmed,
}


# -- reads -------------------------------------------------------------------------------------


async def _store_row(conn: AsyncConnection, store_id: str) -> Row[Any]:
    row = await store_by_id(conn, store_id)
    if row is None:
        raise StoreNotFound(store_id)
    return row


async def read_store(db: Database, store_id: str) -> Row[Any]:
    async with db.read() as conn:
        return await _store_row(conn, store_id)


async def list_stores(db: Database, seller_id: str | None, page: int, page_size: int) -> Page:
    async with db.read() as conn:
        return await stores_page(conn, seller_id, page, page_size)


async def list_store_products(
    db: Database, caller: Principal | None, store_id: str, page: int, page_size: int
) -> Page:
    """A store's products: unlisted ones too for who manages the store."""
    async with db.read() as conn:
        found = await _store_row(conn, store_id)
        return await store_products_page(
            conn,
            store_id,
            listed_only=not may_manage(caller, found.seller_id),
            page=page,
            page_size=page_size,
        )


async def list_reviews(db: Database, product_id: str, page: int, page_size: int) -> Page:
    async with db.read() as conn:
        return await reviews_page(conn, product_id, page, page_size)


async def read_review(db: Database, review_id: str) -> Row[Any]:
    async with db.read() as conn:
        return await review_by_id(conn, review_id)
