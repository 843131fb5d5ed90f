"""Field types shared by the contracts: money is a Decimal with a currency, never a float."""

from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

__all__ = ["Amount", "Currency", "Quantity"]

Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
