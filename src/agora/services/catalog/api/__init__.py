"""Catalog's HTTP API: stores, their products, search, and reviews, one router each.

Anyone may read stores, listed products and reviews; a seller opens stores and manages its own
stores' products (an admin manages every store); a buyer who has a confirmed order of a product
may review it once. Public reads are cached and dropped from the cache when the product changes.
"""

from __future__ import annotations

from fastapi import APIRouter

from agora.services.catalog.api import products, reviews, stores

__all__ = ["build_router"]


def build_router() -> APIRouter:
    router = APIRouter()
    router.include_router(stores.build_router())
    router.include_router(products.build_router())
    router.include_router(reviews.build_router())
    return router
