"""Catalog's handlers against in-memory twins of their repositories, and against the real ones on
SQLite and PostgreSQL with the service's migrations (so that the twins cannot drift from what
the handlers get in production)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from agora.auth import Principal
from agora.contracts.catalog import ListingChanged, PriceChanged, ProductListed, StoreOpened
from agora.contracts.inventory import AvailabilityChanged
from agora.contracts.orders import OrderConfirmed, OrderLine
from agora.infra import InfraSettings
from agora.messaging import Event
from agora.messaging.migrations import migrate
from agora.messaging.sql import Database, sqlite_url
from agora.problems import ProblemError
from agora.runtime.supervisor import ensure_database
from agora.services.catalog import handlers, search, store
from agora.services.catalog.bootstrap import CatalogService
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
)
from agora.services.catalog.repository import (
    ProductRepository,
    ReviewRepository,
    StoreRepository,
    product_of,
)
from agora.services.catalog.seed import DEMO_CATALOG, DEMO_STORE

EXPIRES = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def principal(user_id: str, role: Any) -> Principal:
    return Principal(user_id, role, "free", f"{user_id}@example.com", "session", EXPIRES)


SELLER = principal("seller-1", "seller")
OTHER_SELLER = principal("seller-2", "seller")
ADMIN = principal("admin-1", "admin")
BUYER = principal("buyer-1", "buyer")
KETTLE = NewProduct("Copper kettle", "Stovetop", Decimal("80.00"), "EUR", 7)


# -- the twins ---------------------------------------------------------------------------------


class InMemoryStores:
    """`StoreRepository`'s twin."""

    def __init__(self) -> None:
        self.rows: dict[str, Store] = {}

    async def any(self) -> bool:
        return bool(self.rows)

    async def add(self, store: Store) -> None:
        assert store.id not in self.rows
        self.rows[store.id] = store

    async def get(self, store_id: str) -> Store | None:
        return self.rows.get(store_id)

    async def change(self, store_id: str, *, name: str | None, description: str | None) -> None:
        row = self.rows[store_id]
        self.rows[store_id] = dataclasses.replace(
            row,
            name=row.name if name is None else name,
            description=row.description if description is None else description,
        )


@dataclasses.dataclass
class ProductState:
    """What a test reads back: the product, inventory's count, and its ratings."""

    product: Product
    available: int
    rating_sum: int
    rating_count: int


class InMemoryProducts:
    """`ProductRepository`'s twin."""

    def __init__(self) -> None:
        self.rows: dict[str, ProductState] = {}

    async def add(
        self, product_id: str, store_id: str, seller_id: str | None, item: NewProduct
    ) -> None:
        assert product_id not in self.rows
        product = Product(
            product_id,
            store_id,
            seller_id,
            item.name,
            item.description,
            item.price,
            item.currency,
            listed=True,
        )
        self.rows[product_id] = ProductState(product, 0, 0, 0)

    async def get(self, product_id: str) -> Product | None:
        state = self.rows.get(product_id)
        return None if state is None else state.product

    async def change(self, product_id: str, changes: ProductChanges) -> None:
        state = self.rows[product_id]
        given = {k: v for k, v in dataclasses.asdict(changes).items() if v is not None}
        state.product = dataclasses.replace(state.product, **given)

    async def set_available(self, product_id: str, available: int) -> None:
        if product_id in self.rows:
            self.rows[product_id].available = available

    async def rate(self, product_id: str, rating: int) -> None:
        self.rows[product_id].rating_sum += rating
        self.rows[product_id].rating_count += 1


class InMemoryReviews:
    """`ReviewRepository`'s twin."""

    def __init__(self) -> None:
        self.purchases: dict[tuple[str, str], str] = {}
        self.reviews: dict[tuple[str, str], tuple[str, int, str]] = {}

    async def record_purchases(
        self, buyer_id: str, order_id: str, product_ids: Iterable[str]
    ) -> None:
        for product_id in product_ids:
            self.purchases.setdefault((buyer_id, product_id), order_id)

    async def has_bought(self, buyer_id: str, product_id: str) -> bool:
        return (buyer_id, product_id) in self.purchases

    async def add(
        self, review_id: str, product_id: str, buyer_id: str, rating: int, text: str
    ) -> bool:
        if (product_id, buyer_id) in self.reviews:
            return False
        self.reviews[(product_id, buyer_id)] = (review_id, rating, text)
        return True


# -- either adapter, behind one protocol --------------------------------------------------------


class Work(Protocol):
    """What a test does with either adapter: run a handler in a unit of work, read state."""

    emitted: list[Event]
    changed_products: set[str]

    async def apply(self, handle: Any, *args: Any) -> Any: ...

    async def store(self, store_id: str) -> Store | None: ...

    async def product(self, product_id: str) -> ProductState: ...


class _Unit:
    def __init__(
        self, stores: Any, products: Any, reviews: Any, emitted: list[Event], changed: set[str]
    ) -> None:
        self.stores = stores
        self.products = products
        self.reviews = reviews
        self.changed_products = changed
        self._emitted = emitted

    def emit(self, event: Event) -> None:
        self._emitted.append(event)


class MemoryWork:
    def __init__(self) -> None:
        self.stores = InMemoryStores()
        self.products = InMemoryProducts()
        self.reviews = InMemoryReviews()
        self.emitted: list[Event] = []
        self.changed_products: set[str] = set()

    async def apply(self, handle: Any, *args: Any) -> Any:
        """`handle(uow, *args)` for commands, `handle(event, uow)` for events."""
        unit = _Unit(self.stores, self.products, self.reviews, self.emitted, self.changed_products)
        return await _call(handle, unit, args)

    async def store(self, store_id: str) -> Store | None:
        return await self.stores.get(store_id)

    async def product(self, product_id: str) -> ProductState:
        return dataclasses.replace(self.products.rows[product_id])


class DatabaseWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.emitted: list[Event] = []
        self.changed_products: set[str] = set()

    async def apply(self, handle: Any, *args: Any) -> Any:
        """Like a unit of work: an error rolls back what the handler wrote and emitted."""
        emitted: list[Event] = []
        async with self.db.write() as conn:
            repositories = StoreRepository(conn), ProductRepository(conn), ReviewRepository(conn)
            unit = _Unit(*repositories, emitted, self.changed_products)
            result = await _call(handle, unit, args)
        self.emitted.extend(emitted)
        return result

    async def store(self, store_id: str) -> Store | None:
        async with self.db.read() as conn:
            row = await store.store_by_id(conn, store_id)
        if row is None:
            return None
        return Store(row.id, row.seller_id, row.name, row.description)

    async def product(self, product_id: str) -> ProductState:
        async with self.db.read() as conn:
            row = await store.product_by_id(conn, product_id)
        assert row is not None
        return ProductState(product_of(row), row.available, row.rating_sum, row.rating_count)


async def _call(handle: Any, unit: _Unit, args: tuple[Any, ...]) -> Any:
    if args and isinstance(args[0], Event):
        return await handle(args[0], unit)
    return await handle(unit, *args)


async def migrated(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Database:
    if backend == "sqlite":
        url = sqlite_url(tmp_path / "catalog.db")
    else:
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env("catalog")["AGORA_DATABASE_URL_TEMPLATE"]
        url = template.replace("{service}", "catalog")
        await ensure_database(url)
    db = Database(url, store.metadata)
    await migrate(db, CatalogService.migrations)
    return db


REAL = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=["in-memory", *REAL])
async def work(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Work]:
    if request.param == "in-memory":
        yield MemoryWork()
        return
    db = await migrated(request, tmp_path, request.param)
    try:
        yield DatabaseWork(db)
    finally:
        await db.dispose()


@pytest.fixture(params=REAL)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseWork]:
    db = await migrated(request, tmp_path, request.param)
    try:
        yield DatabaseWork(db)
    finally:
        await db.dispose()


async def listed(work: Work, owner: Principal = SELLER, item: NewProduct = KETTLE) -> str:
    """A new store of `owner` with `item` listed in it; the events cleared."""
    store_id = await work.apply(handlers.create_store, owner, "Shop", "")
    product_id: str = await work.apply(handlers.list_product, owner, store_id, item)
    work.emitted.clear()
    return product_id


def confirmed(order_id: str, buyer: Principal, *product_ids: str) -> OrderConfirmed:
    return OrderConfirmed(
        order_id=order_id,
        customer_id=buyer.user_id,
        total=Decimal("1.00"),
        currency="EUR",
        lines=tuple(
            OrderLine(product_id=p, quantity=1, unit_price=Decimal("1.00")) for p in product_ids
        ),
    )


# -- stores and seeding ------------------------------------------------------------------------


async def test_the_demo_catalog_is_seeded_once_into_an_empty_catalog(work: Work) -> None:
    assert await work.apply(handlers.seed_catalog, DEMO_CATALOG) == len(DEMO_CATALOG)
    assert await work.apply(handlers.seed_catalog, DEMO_CATALOG) == 0

    demo = await work.store(DEMO_STORE)
    assert demo is not None
    assert demo.seller_id is None
    assert [e.product_id for e in work.emitted if isinstance(e, ProductListed)] == [
        p.id for p in DEMO_CATALOG
    ]
    assert work.emitted[0] == StoreOpened(
        store_id=DEMO_STORE, seller_id=None, name="Agora demo store"
    )
    first = DEMO_CATALOG[0]
    assert work.emitted[1] == ProductListed(
        product_id=first.id,
        name=first.name,
        price=first.price,
        currency=first.currency,
        initial_stock=first.stock,
        store_id=DEMO_STORE,
        seller_id=None,
    )
    state = await work.product(first.id)
    assert (state.product.listed, state.available, state.product.price) == (True, 0, first.price)


async def test_a_store_is_changed_by_its_seller_or_an_admin_only(work: Work) -> None:
    store_id = await work.apply(handlers.create_store, SELLER, "Shop", "Old")
    assert work.emitted == [StoreOpened(store_id=store_id, seller_id=SELLER.user_id, name="Shop")]

    await work.apply(handlers.update_store, SELLER, store_id, "Better shop", None)
    await work.apply(handlers.update_store, ADMIN, store_id, None, "New")
    with pytest.raises(NotYours):
        await work.apply(handlers.update_store, OTHER_SELLER, store_id, "Mine", None)
    with pytest.raises(StoreNotFound):
        await work.apply(handlers.update_store, SELLER, "no-such-store", "x", None)

    assert await work.store(store_id) == Store(store_id, SELLER.user_id, "Better shop", "New")


# -- products ----------------------------------------------------------------------------------


async def test_a_product_is_listed_in_its_sellers_store_only(work: Work) -> None:
    store_id = await work.apply(handlers.create_store, SELLER, "Shop", "")
    work.emitted.clear()

    with pytest.raises(NotYours):
        await work.apply(handlers.list_product, OTHER_SELLER, store_id, KETTLE)
    with pytest.raises(StoreNotFound):
        await work.apply(handlers.list_product, SELLER, "no-such-store", KETTLE)
    assert work.emitted == []
    product_id = await work.apply(handlers.list_product, ADMIN, store_id, KETTLE)

    # Listed by an admin, the product is still the store's seller's.
    assert work.emitted == [
        ProductListed(
            product_id=product_id,
            name=KETTLE.name,
            price=KETTLE.price,
            currency="EUR",
            initial_stock=KETTLE.initial_stock,
            store_id=store_id,
            seller_id=SELLER.user_id,
        )
    ]
    state = await work.product(product_id)
    assert state.product == Product(
        product_id, store_id, SELLER.user_id, "Copper kettle", "Stovetop", KETTLE.price, "EUR", True
    )


async def test_a_change_announces_only_what_changed(work: Work) -> None:
    product_id = await listed(work)

    unchanged = ProductChanges(name=KETTLE.name, price=Decimal("80.0"), listed=True)
    await work.apply(handlers.change_product, SELLER, product_id, unchanged)
    assert work.emitted == []
    await work.apply(
        handlers.change_product,
        SELLER,
        product_id,
        ProductChanges(description="Hammered copper", price=Decimal("75.50")),
    )
    await work.apply(handlers.change_product, SELLER, product_id, ProductChanges(listed=False))

    assert work.emitted == [
        PriceChanged(product_id=product_id, price=Decimal("75.50"), currency="EUR"),
        ListingChanged(product_id=product_id, listed=False),
    ]
    product = (await work.product(product_id)).product
    assert (product.name, product.description, product.price, product.listed) == (
        "Copper kettle",
        "Hammered copper",
        Decimal("75.50"),
        False,
    )


async def test_a_product_is_changed_by_its_seller_only_and_hidden_once_unlisted(
    work: Work,
) -> None:
    product_id = await listed(work)

    with pytest.raises(NotYours):
        await work.apply(
            handlers.change_product, OTHER_SELLER, product_id, ProductChanges(price=Decimal("1"))
        )
    await work.apply(handlers.change_product, SELLER, product_id, ProductChanges(listed=False))
    with pytest.raises(ProductNotFound):  # unlisted: not even there for another seller
        await work.apply(
            handlers.change_product, OTHER_SELLER, product_id, ProductChanges(listed=True)
        )
    with pytest.raises(ProductNotFound):
        await work.apply(handlers.change_product, SELLER, "no-such-product", ProductChanges())

    assert work.emitted == [ListingChanged(product_id=product_id, listed=False)]
    assert (await work.product(product_id)).product.price == KETTLE.price


async def test_a_price_finer_than_the_currency_is_refused_and_changes_nothing(
    work: Work,
) -> None:
    product_id = await listed(work)

    changes = ProductChanges(name="Cheap kettle", price=Decimal("9.999"))
    with pytest.raises(ProblemError) as refused:
        await work.apply(handlers.change_product, SELLER, product_id, changes)

    assert (refused.value.status, refused.value.slug) == (422, "validation-error")
    assert work.emitted == []
    product = (await work.product(product_id)).product
    assert (product.name, product.price) == (KETTLE.name, KETTLE.price)


# -- reviews -----------------------------------------------------------------------------------


async def test_only_a_buyer_of_the_product_reviews_it_and_only_once(work: Work) -> None:
    product_id = await listed(work)
    other_id = await listed(work, item=dataclasses.replace(KETTLE, name="Tea kettle"))

    with pytest.raises(NotAPurchaser):
        await work.apply(handlers.add_review, BUYER, product_id, 5, "")
    # Redelivered, and a later order of the same product: the purchase stays recorded once.
    await work.apply(handlers.on_order_confirmed, confirmed("o1", BUYER, product_id))
    await work.apply(handlers.on_order_confirmed, confirmed("o1", BUYER, product_id))
    await work.apply(handlers.on_order_confirmed, confirmed("o2", BUYER, product_id, product_id))
    with pytest.raises(NotAPurchaser):  # bought one product, not the other
        await work.apply(handlers.add_review, BUYER, other_id, 5, "")

    await work.apply(handlers.add_review, BUYER, product_id, 4, "Boils fast")
    with pytest.raises(AlreadyReviewed):
        await work.apply(handlers.add_review, BUYER, product_id, 1, "Changed my mind")

    state = await work.product(product_id)
    assert (state.rating_sum, state.rating_count) == (4, 1)
    assert work.emitted == []


async def test_an_unlisted_product_takes_no_review(work: Work) -> None:
    product_id = await listed(work)
    await work.apply(handlers.on_order_confirmed, confirmed("o1", BUYER, product_id))
    await work.apply(handlers.change_product, SELLER, product_id, ProductChanges(listed=False))

    with pytest.raises(ProductNotFound):
        await work.apply(handlers.add_review, BUYER, product_id, 5, "")

    assert (await work.product(product_id)).rating_count == 0


# -- other services' events --------------------------------------------------------------------


async def test_availability_follows_inventory_and_drops_the_cached_product(work: Work) -> None:
    product_id = await listed(work)

    await work.apply(
        handlers.on_availability_changed, AvailabilityChanged(product_id=product_id, available=7)
    )
    await work.apply(
        handlers.on_availability_changed, AvailabilityChanged(product_id=product_id, available=3)
    )
    # Inventory may know a product catalog does not (another catalog's): nothing happens.
    await work.apply(
        handlers.on_availability_changed, AvailabilityChanged(product_id="elsewhere", available=1)
    )

    assert (await work.product(product_id)).available == 3
    assert work.changed_products == {product_id, "elsewhere"}
    assert work.emitted == []


# -- the search index, kept by the real repository ---------------------------------------------


async def search_names(work: DatabaseWork, word: str) -> list[str]:
    rows, _ = await search.search_page(
        work.db,
        search.terms(word),
        store_id=None,
        min_price=None,
        max_price=None,
        order="relevance",
        page=1,
        page_size=10,
    )
    return [row.name for row in rows]


async def test_a_listed_product_is_searchable_under_its_current_name(
    database: DatabaseWork,
) -> None:
    product_id = await listed(database)
    assert await search_names(database, "copper") == ["Copper kettle"]

    await database.apply(
        handlers.change_product, SELLER, product_id, ProductChanges(name="Brass kettle")
    )
    assert await search_names(database, "copper") == []
    assert await search_names(database, "brass") == ["Brass kettle"]
    await database.apply(
        handlers.change_product, SELLER, product_id, ProductChanges(description="Hammered")
    )
    assert await search_names(database, "hammer") == ["Brass kettle"]


async def test_prices_filter_and_sort_as_amounts(database: DatabaseWork) -> None:
    """SQLite keeps prices as text, where "129.00" sorts before "40" and "9.50" after "10"."""
    await database.apply(handlers.seed_catalog, DEMO_CATALOG)
    await listed(
        database, item=dataclasses.replace(KETTLE, name="Tin kettle", price=Decimal("9.5"))
    )

    async def names(order: str, **bounds: Decimal) -> list[str]:
        rows, total = await search.search_page(
            database.db,
            [],
            store_id=None,
            min_price=bounds.get("min_price"),
            max_price=bounds.get("max_price"),
            order=order,
            page=1,
            page_size=10,
        )
        assert total == len(rows)
        return [row.name for row in rows]

    assert await names("price", max_price=Decimal("40")) == [
        "Tin kettle",
        "Ceramic dripper",
        "Espresso beans, 1 kg",
    ]
    assert await names("-price", min_price=Decimal("24.9")) == [
        "Burr grinder",
        "Pour-over kettle",
        "Espresso beans, 1 kg",
    ]


async def test_stores_opened_before_their_event_existed_are_announced_once(
    database: DatabaseWork,
) -> None:
    """A store the upgrade found (its row `announced` false, as the migration leaves rows it
    finds) is announced by `StoreOpened` once; one opened since was announced when opened."""
    async with database.db.write() as conn:
        await conn.execute(
            store.stores.insert().values(
                id="old-store",
                seller_id="seller-1",
                name="Old shop",
                description="",
                created_at=EXPIRES,
                announced=False,
            )
        )
    new_id = await database.apply(handlers.create_store, SELLER, "New shop", "")
    database.emitted.clear()

    assert await database.apply(handlers.announce_stores) == 1
    assert database.emitted == [
        StoreOpened(store_id="old-store", seller_id="seller-1", name="Old shop")
    ]
    assert await database.apply(handlers.announce_stores) == 0
    assert len(database.emitted) == 1  # nor the store opened since
    assert await database.store(new_id) is not None
