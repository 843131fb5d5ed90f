"""How catalog's handlers change its rows: one repository per aggregate (stores, products,
reviews with the purchases that allow them), over the unit of work's connection. Tests hold
handlers to them with in-memory twins."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, bindparam, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from agora.messaging import UnitOfWork, insert_new, utcnow
from agora.services.catalog import search
from agora.services.catalog.domain import NewProduct, Product, ProductChanges, Store
from agora.services.catalog.store import products, purchases, reviews, stores

__all__ = [
    "CatalogUnitOfWork",
    "ProductRepository",
    "ReviewRepository",
    "StoreRepository",
]


class StoreRepository:
    """Sellers' stores, in the unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def any(self) -> bool:
        """Whether the catalog has a store at all (it has been seeded or used)."""
        return bool(await self._conn.scalar(COUNT_STORES))

    async def unannounced(self, limit: int) -> list[Store]:
        """Stores never announced by `StoreOpened` (opened before it existed), oldest first;
        locked on PostgreSQL so that two replicas starting at once announce each once."""
        rows = await self._conn.execute(
            select(stores)
            .where(~stores.c.announced)
            .order_by(stores.c.created_at, stores.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [Store(row.id, row.seller_id, row.name, row.description) for row in rows]

    async def mark_announced(self, store_ids: list[str]) -> None:
        await self._conn.execute(
            update(stores).where(stores.c.id.in_(store_ids)).values(announced=True)
        )

    async def add(self, store: Store) -> None:
        """Open `store`; its id is new (a taken one raises IntegrityError)."""
        await self._conn.execute(
            ADD_STORE,
            {
                "id": store.id,
                "seller_id": store.seller_id,
                "name": store.name,
                "description": store.description,
                "created_at": utcnow(),
                "announced": True,  # the caller emits StoreOpened in the same transaction
            },
        )

    async def get(self, store_id: str) -> Store | None:
        row = (await self._conn.execute(STORE, {"store": store_id})).first()
        if row is None:
            return None
        return Store(id=row.id, seller_id=row.seller_id, name=row.name, description=row.description)

    async def change(self, store_id: str, *, name: str | None, description: str | None) -> None:
        """Set the fields given; None leaves a field as it is."""
        await self._conn.execute(
            CHANGE_STORE, {"store": store_id, "name": name, "description": description}
        )


class ProductRepository:
    """Products, their search index kept in step, and the read models other services' events
    keep on them (availability, ratings), in the unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, product_id: str, store_id: str, seller_id: str | None, item: NewProduct
    ) -> None:
        """List a new product, searchable at once, available 0 until inventory says otherwise;
        its id is new (a taken one raises IntegrityError)."""
        await self._conn.execute(
            ADD_PRODUCT,
            {
                "id": product_id,
                "store_id": store_id,
                "seller_id": seller_id,
                "name": item.name,
                "description": item.description,
                "price": item.price,
                "currency": item.currency,
                "available": 0,
                "listed": True,
                "rating_sum": 0,
                "rating_count": 0,
                "created_at": utcnow(),
            },
        )
        await search.index(self._conn, product_id, item.name, item.description)

    async def get(self, product_id: str) -> Product | None:
        row = (await self._conn.execute(PRODUCT, {"product": product_id})).first()
        return None if row is None else product_of(row)

    async def change(self, product_id: str, changes: ProductChanges) -> None:
        """Set the fields `changes` gives (None leaves a field as it is); a new name or
        description is searchable at once."""
        result = await self._conn.execute(
            CHANGE_PRODUCT,
            {
                "product": product_id,
                "name": changes.name,
                "description": changes.description,
                "price": changes.price,
                "listed": changes.listed,
            },
        )
        row = result.one()
        if changes.name is not None or changes.description is not None:
            await search.index(self._conn, product_id, row.name, row.description)

    async def set_available(self, product_id: str, available: int) -> None:
        """Record inventory's count; nothing for a product catalog does not have."""
        await self._conn.execute(SET_AVAILABLE, {"product": product_id, "available": available})

    async def rate(self, product_id: str, rating: int) -> None:
        """Count one more review of `rating` in the product's average."""
        await self._conn.execute(RATE, {"product": product_id, "rating": rating})


class ReviewRepository:
    """Buyers' reviews, and who bought what (the right to review), in the unit of work's
    transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record_purchases(
        self, buyer_id: str, order_id: str, product_ids: Iterable[str]
    ) -> None:
        """`buyer_id` bought `product_ids` in `order_id`; a purchase already recorded (an
        earlier order of the product) is kept as it is."""
        rows = [
            {"buyer_id": buyer_id, "product_id": product_id, "order_id": order_id}
            for product_id in sorted(set(product_ids))
        ]
        if rows:
            await self._conn.execute(insert_new(purchases, self._conn.dialect.name), rows)

    async def has_bought(self, buyer_id: str, product_id: str) -> bool:
        return bool(await self._conn.scalar(BOUGHT, {"buyer": buyer_id, "product": product_id}))

    async def add(
        self, review_id: str, product_id: str, buyer_id: str, rating: int, text: str
    ) -> bool:
        """Record the buyer's review of the product; False (and nothing changed) if the buyer
        has reviewed it already."""
        values = {
            "id": review_id,
            "product_id": product_id,
            "buyer_id": buyer_id,
            "rating": rating,
            "text": text,
            "created_at": utcnow(),
        }
        # A savepoint, so that the refusal leaves the rest of the transaction usable.
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(ADD_REVIEW, values)
        except IntegrityError:
            return False
        return True


class CatalogUnitOfWork(UnitOfWork):
    """Names the products whose cached views it changes; the service drops them on commit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.changed_products: set[str] = set()

    @property
    def stores(self) -> StoreRepository:
        return StoreRepository(self.conn)

    @property
    def products(self) -> ProductRepository:
        return ProductRepository(self.conn)

    @property
    def reviews(self) -> ReviewRepository:
        return ReviewRepository(self.conn)


def product_of(row: Row[Any]) -> Product:
    return Product(
        id=row.id,
        store_id=row.store_id,
        seller_id=row.seller_id,
        name=row.name,
        description=row.description,
        price=row.price,
        currency=row.currency,
        listed=bool(row.listed),
    )


def _given_or_kept(column: Column[Any]) -> ColumnElement[Any]:
    """`COALESCE(:name, name)`: a None parameter keeps the column's value, so that one
    prepared statement serves any set of changes."""
    return func.coalesce(bindparam(column.name, type_=column.type), column)


COUNT_STORES = select(func.count()).select_from(stores)
ADD_STORE = insert(stores)
STORE = select(stores).where(stores.c.id == bindparam("store"))
CHANGE_STORE = (
    update(stores)
    .where(stores.c.id == bindparam("store"))
    .values(name=_given_or_kept(stores.c.name), description=_given_or_kept(stores.c.description))
)

ADD_PRODUCT = insert(products)
PRODUCT = select(products).where(products.c.id == bindparam("product"))
CHANGE_PRODUCT = (
    update(products)
    .where(products.c.id == bindparam("product"))
    .values(
        name=_given_or_kept(products.c.name),
        description=_given_or_kept(products.c.description),
        price=_given_or_kept(products.c.price),
        listed=_given_or_kept(products.c.listed),
    )
    .returning(products.c.name, products.c.description)
)
SET_AVAILABLE = (
    update(products)
    .where(products.c.id == bindparam("product"))
    .values(available=bindparam("available"))
)
RATE = (
    update(products)
    .where(products.c.id == bindparam("product"))
    .values(
        rating_sum=products.c.rating_sum + bindparam("rating"),
        rating_count=products.c.rating_count + 1,
    )
)

ADD_REVIEW = insert(reviews)
BOUGHT = (
    select(func.count())
    .select_from(purchases)
    .where(
        purchases.c.buyer_id == bindparam("buyer"), purchases.c.product_id == bindparam("product")
    )
)
