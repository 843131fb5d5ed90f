"""Products: listed in a store, searched, read, changed, unlisted."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from agora.auth import OptionalUser, SellerOrAdmin
from agora.contracts.types import AmountIn
from agora.problems import ProblemError
from agora.services.catalog import handlers, search
from agora.services.catalog.api.responses import json_response, problems
from agora.services.catalog.deps import CatalogServiceDep
from agora.services.catalog.domain import NewProduct, ProductChanges
from agora.services.catalog.schemas import (
    Id,
    Page,
    PageSize,
    ProductChangesIn,
    ProductIn,
    ProductOut,
    ProductsOut,
    Sort,
)

__all__ = ["build_router"]


def build_router() -> APIRouter:
    router = APIRouter(tags=["catalog"])

    @router.post(
        "/api/stores/{store_id}/products",
        status_code=201,
        response_model=ProductOut,
        summary="List a product in a store (its seller, or an admin)",
        description="Inventory learns the initial stock from the ProductListed event; "
        "`available` follows once it has (poll the product).",
        responses=problems(401, 403, 404, 422),
    )
    async def list_product(
        service: CatalogServiceDep, store_id: Id, body: ProductIn, caller: SellerOrAdmin
    ) -> Response:
        item = NewProduct(
            body.name, body.description, body.price, body.currency, body.initial_stock
        )
        async with service.unit_of_work() as uow:
            product_id = await handlers.list_product(uow, caller, store_id, item)
        await service.views.forget(product_id)
        view = await service.views.product(service.platform.db, product_id)
        return json_response(view, 201, {"Location": f"/api/products/{product_id}"})

    @router.get(
        "/api/stores/{store_id}/products",
        response_model=ProductsOut,
        summary="A store's products: listed ones, and unlisted ones too for who manages it",
        responses=problems(404),
    )
    async def store_products(
        service: CatalogServiceDep,
        store_id: Id,
        caller: OptionalUser,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> ProductsOut:
        rows, total = await handlers.list_store_products(
            service.platform.db, caller, store_id, page, page_size
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
        responses=problems(422),
    )
    async def search_products(
        service: CatalogServiceDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        store: Annotated[str | None, Query(max_length=100)] = None,
        min_price: Annotated[AmountIn | None, Query()] = None,
        max_price: Annotated[AmountIn | None, Query()] = None,
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

        async def render() -> bytes:
            rows, total = await search.search_page(
                service.platform.db,
                words,
                store_id=store,
                min_price=min_price,
                max_price=max_price,
                order=order,
                page=page,
                page_size=page_size,
            )
            found = ProductsOut(
                items=[ProductOut.of(row) for row in rows],
                page=page,
                page_size=page_size,
                total=total,
            )
            return found.model_dump_json().encode()

        query = orjson.dumps([words, store, str(min_price), str(max_price), order, page, page_size])
        body = await service.views.search(query.decode(), render)
        return Response(body, media_type="application/json")

    @router.get(
        "/api/products/{product_id}",
        response_model=ProductOut,
        summary="One product",
        responses=problems(404),
    )
    async def get_product(
        service: CatalogServiceDep, product_id: Id, caller: OptionalUser
    ) -> ProductOut:
        return await service.views.product_for(service.platform.db, caller, product_id)

    @router.patch(
        "/api/products/{product_id}",
        response_model=ProductOut,
        summary="Change a product's name, description or price, or (un)list it",
        description="A price change applies to orders placed after orders has learned of it "
        "(PriceChanged); an unlisted product takes no new orders (ListingChanged).",
        responses=problems(401, 403, 404, 422),
    )
    async def change_product(
        service: CatalogServiceDep, product_id: Id, body: ProductChangesIn, caller: SellerOrAdmin
    ) -> ProductOut:
        changes = ProductChanges(body.name, body.description, body.price, body.listed)
        async with service.unit_of_work() as uow:
            await handlers.change_product(uow, caller, product_id, changes)
        await service.views.forget(product_id)
        return await service.views.product(service.platform.db, product_id)

    @router.delete(
        "/api/products/{product_id}",
        status_code=204,
        summary="Unlist a product (its seller, or an admin); PATCH listed=true lists it again",
        responses=problems(401, 403, 404),
    )
    async def unlist_product(
        service: CatalogServiceDep, product_id: Id, caller: SellerOrAdmin
    ) -> Response:
        await change_product(service, product_id, ProductChangesIn(listed=False), caller)
        return Response(status_code=204)

    return router
