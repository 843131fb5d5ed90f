"""Catalog's use cases: list products (the seed catalog, for now) and keep availability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, insert, select, update

from agora.contracts.catalog import ProductListed
from agora.contracts.inventory import AvailabilityChanged
from agora.contracts.types import Amount, Currency
from agora.messaging import Event, Handler, UnitOfWork, utcnow
from agora.services.catalog.store import products


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


async def seed_catalog(uow: UnitOfWork, seed: Sequence[SeedProduct]) -> int:
    """List `seed` if the catalog is empty (first start); returns how many were listed.

    Replicas starting together may both find it empty: the second's insert then violates the
    primary key and rolls back (IntegrityError), which the caller takes as "seeded already"."""
    if await uow.conn.scalar(select(func.count()).select_from(products)):
        return 0
    now = utcnow()
    await uow.conn.execute(
        insert(products),
        [
            {
                "id": item.id,
                "name": item.name,
                "description": item.description,
                "price": item.price,
                "currency": item.currency,
                "available": 0,
                "created_at": now,
            }
            for item in seed
        ],
    )
    for item in seed:
        uow.emit(
            ProductListed(
                product_id=item.id,
                name=item.name,
                price=item.price,
                currency=item.currency,
                initial_stock=item.stock,
            )
        )
    return len(seed)


async def on_availability_changed(event: AvailabilityChanged, uow: UnitOfWork) -> None:
    await uow.conn.execute(
        update(products).where(products.c.id == event.product_id).values(available=event.available)
    )


HANDLERS: Mapping[type[Event], Handler[Any]] = {AvailabilityChanged: on_availability_changed}
