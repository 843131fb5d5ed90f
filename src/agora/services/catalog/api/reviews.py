"""Reviews: a buyer of a product reviews it once; anyone reads them."""

from __future__ import annotations

from fastapi import APIRouter

from agora.auth import Buyer, OptionalUser
from agora.services.catalog import handlers
from agora.services.catalog.api.responses import problems
from agora.services.catalog.deps import CatalogServiceDep
from agora.services.catalog.schemas import Id, Page, PageSize, ReviewIn, ReviewOut, ReviewsOut

__all__ = ["build_router"]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/products/{product_id}/reviews", tags=["catalog"])

    @router.post(
        "",
        status_code=201,
        response_model=ReviewOut,
        summary="Review a product you bought (buyers with a confirmed order of it)",
        responses=problems(401, 403, 404, 409, 422),
    )
    async def add_review(
        service: CatalogServiceDep, product_id: Id, body: ReviewIn, buyer: Buyer
    ) -> ReviewOut:
        async with service.unit_of_work() as uow:
            review_id = await handlers.add_review(uow, buyer, product_id, body.rating, body.text)
        await service.views.forget(product_id)
        review = await handlers.read_review(service.platform.db, review_id)
        return ReviewOut.model_validate(review._mapping)

    @router.get(
        "",
        response_model=ReviewsOut,
        summary="A product's reviews, newest first",
        responses=problems(404),
    )
    async def list_reviews(
        service: CatalogServiceDep,
        product_id: Id,
        caller: OptionalUser,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> ReviewsOut:
        await service.views.product_for(service.platform.db, caller, product_id)  # or 404
        rows, total = await handlers.list_reviews(service.platform.db, product_id, page, page_size)
        return ReviewsOut(
            items=[ReviewOut.model_validate(row._mapping) for row in rows],
            page=page,
            page_size=page_size,
            total=total,
        )

    return router
