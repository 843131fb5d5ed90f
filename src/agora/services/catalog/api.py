"""Catalog's HTTP API: stores, their products, search, and reviews.

Anyone may read stores, listed products and reviews; a seller opens stores and manages its own
stores' products (an admin manages every store); a buyer who has a confirmed order of a product
may review it once. Public reads are cached and dropped from the cache when the product changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import AUTHORIZE, Buyer, OptionalUser, Seller, SellerOrAdmin
from agora.contracts.types import Amount, Currency
from agora.problems import ProblemError
from agora.services.catalog import handlers, search
from agora.services.catalog.bootstrap import CatalogService
from agora.services.catalog.deps import CatalogServiceDep
from agora.services.catalog.store import products, reviews, stores

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5_000)]
Id = Annotated[str, Path(min_length=1, max_length=100)]
Sort = Literal["relevance", "newest", "price", "-price", "rating", "name"]


class StoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description = ""


class StoreChangesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description = ""
    price: Amount
    currency: Currency
    initial_stock: int = Field(ge=0, le=10_000_000)


class ProductChangesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Description | None = None
    price: Amount | None = None
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


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
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


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "No such store, product, or one the caller may not see",
        409: "Already reviewed",
        422: "Invalid request",
        **{code: value["description"] for code, value in AUTHORIZE.items()},
    }
    return {
        code: {"description": described[code], "content": {"application/problem+json": {}}}
        for code in codes
    }


async def _page(
    conn: AsyncConnection, query: Select[Any], order: Sequence[Any], page: int, page_size: int
) -> tuple[list[Row[Any]], int]:
    """One page of `query` in `order`, and how many rows the whole query has."""
    total = await conn.scalar(select(func.count()).select_from(query.subquery()))
    rows = await conn.execute(
        query.order_by(*order).limit(page_size).offset((page - 1) * page_size)
    )
    return list(rows.all()), int(total or 0)


def _store_not_found(store_id: str) -> ProblemError:
    return ProblemError(404, "store-not-found", "Store not found", f"no store {store_id}")


def _product_not_found(product_id: str) -> ProblemError:
    return ProblemError(404, "product-not-found", "Product not found", f"no product {product_id}")


def _not_yours(error: handlers.NotYours) -> ProblemError:
    return ProblemError(403, "not-your-store", "Not your store", str(error))


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json().encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def build_router() -> APIRouter:
    router = APIRouter(tags=["catalog"])

    async def product_view(service: CatalogService, product_id: str) -> ProductOut:
        """The product as anyone may see it, through the read cache."""
        key = f"product:{product_id}"
        cached = await service.views.cache.get(key)
        if cached is not None:
            return ProductOut.model_validate_json(cached)
        async with service.platform.db.read() as conn:
            try:
                row = await handlers.load_product(conn, product_id)
            except handlers.ProductNotFound:
                raise _product_not_found(product_id) from None
        view = ProductOut.of(row)
        await service.views.cache.set(key, view.model_dump_json().encode(), service.views.ttl)
        return view

    # -- stores ---------------------------------------------------------------------------

    @router.post(
        "/api/stores",
        status_code=201,
        response_model=StoreOut,
        summary="Open a store (sellers)",
        responses=_problems(401, 403, 422),
    )
    async def create_store(service: CatalogServiceDep, body: StoreIn, seller: Seller) -> Response:
        async with service.unit_of_work() as uow:
            store_id = await handlers.create_store(uow, seller, body.name, body.description)
        async with service.platform.db.read() as conn:
            row = await handlers.load_store(conn, store_id)
        return _json(
            StoreOut.model_validate(row._mapping), 201, {"Location": f"/api/stores/{store_id}"}
        )

    @router.get("/api/stores", response_model=StoresOut, summary="Stores, newest first")
    async def list_stores(
        service: CatalogServiceDep,
        seller: Annotated[str | None, Query(max_length=100)] = None,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> StoresOut:
        query = select(stores)
        if seller is not None:
            query = query.where(stores.c.seller_id == seller)
        async with service.platform.db.read() as conn:
            rows, total = await _page(
                conn, query, [stores.c.created_at.desc(), stores.c.id], page, page_size
            )
        return StoresOut(
            items=[StoreOut.model_validate(row._mapping) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    @router.get(
        "/api/stores/{store_id}",
        response_model=StoreOut,
        summary="One store",
        responses=_problems(404),
    )
    async def get_store(service: CatalogServiceDep, store_id: Id) -> StoreOut:
        async with service.platform.db.read() as conn:
            try:
                row = await handlers.load_store(conn, store_id)
            except handlers.StoreNotFound:
                raise _store_not_found(store_id) from None
        return StoreOut.model_validate(row._mapping)

    @router.patch(
        "/api/stores/{store_id}",
        response_model=StoreOut,
        summary="Rename or describe a store (its seller, or an admin)",
        responses=_problems(401, 403, 404, 422),
    )
    async def change_store(
        service: CatalogServiceDep, store_id: Id, body: StoreChangesIn, caller: SellerOrAdmin
    ) -> StoreOut:
        try:
            async with service.unit_of_work() as uow:
                await handlers.update_store(uow, caller, store_id, body.name, body.description)
        except handlers.StoreNotFound:
            raise _store_not_found(store_id) from None
        except handlers.NotYours as error:
            raise _not_yours(error) from None
        return await get_store(service, store_id)

    # -- products -------------------------------------------------------------------------

    @router.post(
        "/api/stores/{store_id}/products",
        status_code=201,
        response_model=ProductOut,
        summary="List a product in a store (its seller, or an admin)",
        description="Inventory learns the initial stock from the ProductListed event; "
        "`available` follows once it has (poll the product).",
        responses=_problems(401, 403, 404, 422),
    )
    async def list_product(
        service: CatalogServiceDep, store_id: Id, body: ProductIn, caller: SellerOrAdmin
    ) -> Response:
        item = handlers.NewProduct(
            body.name, body.description, body.price, body.currency, body.initial_stock
        )
        try:
            async with service.unit_of_work() as uow:
                product_id = await handlers.list_product(uow, caller, store_id, item)
        except handlers.StoreNotFound:
            raise _store_not_found(store_id) from None
        except handlers.NotYours as error:
            raise _not_yours(error) from None
        await service.views.forget(product_id)
        view = await product_view(service, product_id)
        return _json(view, 201, {"Location": f"/api/products/{product_id}"})

    @router.get(
        "/api/stores/{store_id}/products",
        response_model=ProductsOut,
        summary="A store's products: listed ones, and unlisted ones too for who manages it",
        responses=_problems(404),
    )
    async def store_products(
        service: CatalogServiceDep,
        store_id: Id,
        caller: OptionalUser,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> ProductsOut:
        async with service.platform.db.read() as conn:
            try:
                store = await handlers.load_store(conn, store_id)
            except handlers.StoreNotFound:
                raise _store_not_found(store_id) from None
            query = select(products).where(products.c.store_id == store_id)
            if not handlers.may_manage(caller, store.seller_id):
                query = query.where(products.c.listed.is_(True))
            rows, total = await _page(
                conn, query, [products.c.created_at.desc(), products.c.id], page, page_size
            )
        return ProductsOut(
            items=[ProductOut.of(row) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    @router.get(
        "/api/products",
        response_model=ProductsOut,
        summary="Search listed products",
        description="`q`: words, each matched as a word prefix, all required (full-text, with "
        "stemming). `sort`: relevance (the default with `q`), newest (the default without), "
        "price, -price, rating, name.",
        responses=_problems(422),
    )
    async def search_products(
        service: CatalogServiceDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        store: Annotated[str | None, Query(max_length=100)] = None,
        min_price: Annotated[Amount | None, Query()] = None,
        max_price: Annotated[Amount | None, Query()] = None,
        sort: Sort | None = None,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> Response:
        words = search.terms(q or "")
        order = sort or ("relevance" if words else "newest")
        if order == "relevance" and not words:
            raise ProblemError(
                422, "validation-error", "Invalid request", "sort=relevance needs a query q"
            )
        key = (
            f"search:{await service.views.search_generation()}:"
            + orjson.dumps(
                [words, store, str(min_price), str(max_price), order, page, page_size]
            ).decode()
        )
        cached = await service.views.cache.get(key)
        if cached is not None:
            return Response(cached, media_type="application/json")
        async with service.platform.db.read() as conn:
            query = select(products).where(products.c.listed.is_(True))
            rank = None
            if words:
                hits = search.matches(conn.dialect.name, words)
                query = query.join(hits, hits.c.product_id == products.c.id)
                rank = hits.c.rank
            if store is not None:
                query = query.where(products.c.store_id == store)
            if min_price is not None:
                query = query.where(products.c.price >= min_price)
            if max_price is not None:
                query = query.where(products.c.price <= max_price)
            orderings: dict[str, list[Any]] = {
                "relevance": [rank] if rank is not None else [],
                "newest": [products.c.created_at.desc()],
                "price": [products.c.price],
                "-price": [products.c.price.desc()],
                "rating": [
                    (products.c.rating_sum * 1.0 / func.nullif(products.c.rating_count, 0))
                    .desc()
                    .nulls_last()
                ],
                "name": [products.c.name],
            }
            rows, total = await _page(
                conn, query, [*orderings[order], products.c.id], page, page_size
            )
        body = ProductsOut(
            items=[ProductOut.of(row) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        ).model_dump_json()
        await service.views.cache.set(key, body.encode(), service.views.ttl)
        return Response(body, media_type="application/json")

    @router.get(
        "/api/products/{product_id}",
        response_model=ProductOut,
        summary="One product",
        responses=_problems(404),
    )
    async def get_product(
        service: CatalogServiceDep, product_id: Id, caller: OptionalUser
    ) -> ProductOut:
        view = await product_view(service, product_id)
        if not (view.listed or handlers.may_manage(caller, view.seller_id)):
            raise _product_not_found(product_id)
        return view

    @router.patch(
        "/api/products/{product_id}",
        response_model=ProductOut,
        summary="Change a product's name, description or price, or (un)list it",
        description="A price change applies to orders placed after orders has learned of it "
        "(PriceChanged); an unlisted product takes no new orders (ListingChanged).",
        responses=_problems(401, 403, 404, 422),
    )
    async def change_product(
        service: CatalogServiceDep, product_id: Id, body: ProductChangesIn, caller: SellerOrAdmin
    ) -> ProductOut:
        changes = handlers.ProductChanges(body.name, body.description, body.price, body.listed)
        try:
            async with service.unit_of_work() as uow:
                await handlers.change_product(uow, caller, product_id, changes)
        except handlers.ProductNotFound:
            raise _product_not_found(product_id) from None
        except handlers.NotYours as error:
            raise _not_yours(error) from None
        await service.views.forget(product_id)
        return await product_view(service, product_id)

    @router.delete(
        "/api/products/{product_id}",
        status_code=204,
        summary="Unlist a product (its seller, or an admin); PATCH listed=true lists it again",
        responses=_problems(401, 403, 404),
    )
    async def unlist_product(
        service: CatalogServiceDep, product_id: Id, caller: SellerOrAdmin
    ) -> Response:
        await change_product(service, product_id, ProductChangesIn(listed=False), caller)
        return Response(status_code=204)

    # -- reviews --------------------------------------------------------------------------

    @router.post(
        "/api/products/{product_id}/reviews",
        status_code=201,
        response_model=ReviewOut,
        summary="Review a product you bought (buyers with a confirmed order of it)",
        responses=_problems(401, 403, 404, 409, 422),
    )
    async def add_review(
        service: CatalogServiceDep, product_id: Id, body: ReviewIn, buyer: Buyer
    ) -> ReviewOut:
        try:
            async with service.unit_of_work() as uow:
                review_id = await handlers.add_review(
                    uow, buyer, product_id, body.rating, body.text
                )
        except handlers.ProductNotFound:
            raise _product_not_found(product_id) from None
        except handlers.NotAPurchaser as error:
            raise ProblemError(
                403, "not-a-purchaser", "Only buyers of the product may review it", str(error)
            ) from None
        except handlers.AlreadyReviewed as error:
            raise ProblemError(409, "already-reviewed", "Already reviewed", str(error)) from None
        await service.views.forget(product_id)
        async with service.platform.db.read() as conn:
            row = (await conn.execute(select(reviews).where(reviews.c.id == review_id))).one()
        return ReviewOut.model_validate(row._mapping)

    @router.get(
        "/api/products/{product_id}/reviews",
        response_model=ReviewsOut,
        summary="A product's reviews, newest first",
        responses=_problems(404),
    )
    async def list_reviews(
        service: CatalogServiceDep,
        product_id: Id,
        caller: OptionalUser,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> ReviewsOut:
        await get_product(service, product_id, caller)
        query = select(reviews).where(reviews.c.product_id == product_id)
        async with service.platform.db.read() as conn:
            rows, total = await _page(
                conn, query, [reviews.c.created_at.desc(), reviews.c.id], page, page_size
            )
        return ReviewsOut(
            items=[ReviewOut.model_validate(row._mapping) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    return router
