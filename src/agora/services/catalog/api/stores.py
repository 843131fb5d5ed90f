"""Stores: open, read, rename."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from agora.auth import Seller, SellerOrAdmin
from agora.services.catalog import handlers
from agora.services.catalog.api.responses import json_response, problems
from agora.services.catalog.deps import CatalogServiceDep
from agora.services.catalog.schemas import (
    Id,
    Page,
    PageSize,
    StoreChangesIn,
    StoreIn,
    StoreOut,
    StoresOut,
)

__all__ = ["build_router"]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/stores", tags=["catalog"])

    @router.post(
        "",
        status_code=201,
        response_model=StoreOut,
        summary="Open a store (sellers)",
        responses=problems(401, 403, 422),
    )
    async def create_store(service: CatalogServiceDep, body: StoreIn, seller: Seller) -> Response:
        async with service.unit_of_work() as uow:
            store_id = await handlers.create_store(uow, seller, body.name, body.description)
        store = await handlers.read_store(service.platform.db, store_id)
        return json_response(
            StoreOut.model_validate(store._mapping), 201, {"Location": f"/api/stores/{store_id}"}
        )

    @router.get("", response_model=StoresOut, summary="Stores, newest first")
    async def list_stores(
        service: CatalogServiceDep,
        seller: Annotated[str | None, Query(max_length=100)] = None,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> StoresOut:
        rows, total = await handlers.list_stores(service.platform.db, seller, page, page_size)
        return StoresOut(
            items=[StoreOut.model_validate(row._mapping) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    @router.get(
        "/{store_id}",
        response_model=StoreOut,
        summary="One store",
        responses=problems(404),
    )
    async def get_store(service: CatalogServiceDep, store_id: Id) -> StoreOut:
        store = await handlers.read_store(service.platform.db, store_id)
        return StoreOut.model_validate(store._mapping)

    @router.patch(
        "/{store_id}",
        response_model=StoreOut,
        summary="Rename or describe a store (its seller, or an admin)",
        responses=problems(401, 403, 404, 422),
    )
    async def change_store(
        service: CatalogServiceDep, store_id: Id, body: StoreChangesIn, caller: SellerOrAdmin
    ) -> StoreOut:
        async with service.unit_of_work() as uow:
            await handlers.update_store(uow, caller, store_id, body.name, body.description)
        return await get_store(service, store_id)

    return router
