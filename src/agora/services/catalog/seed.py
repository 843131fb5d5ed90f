"""The catalog a fresh installation starts with: the seed file's format and the demo products."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from agora.contracts.types import Amount, Currency

__all__ = ["DEMO_CATALOG", "DEMO_STORE", "SeedProduct"]

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
