"""Field types shared by the contracts and by every service's request bodies: money is a Decimal
with a currency, never a float.

`Amount` and `Currency` describe what events carry; a request body says money with `AmountIn`
and `CurrencyIn`, which refuse what a client may get wrong (a float, a digit that is not ASCII,
a currency that ISO 4217 does not know) and `check_minor_units`, which holds an amount to its
currency's decimals. Every request body is a `RequestModel`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

from iso4217 import Currency as Iso4217
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_QUANTITY",
    "Amount",
    "AmountIn",
    "Currency",
    "CurrencyIn",
    "Quantity",
    "RequestModel",
    "check_minor_units",
    "minor_units",
]

MAX_QUANTITY = 10_000
"""The most of one product in one order."""

Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]

# ASCII digits only: `Decimal` alone also reads "١٢" (Arabic-Indic digits), "-0", " 1 " and "1e3".
AMOUNT_TEXT = re.compile(r"[0-9]{1,32}(\.[0-9]{1,32})?", re.ASCII)


def _amount(value: object) -> Decimal:
    # A JSON number is parsed as a float before we see it: 0.1 + 0.2 is already wrong there.
    if isinstance(value, bool) or not isinstance(value, str | Decimal):
        raise PydanticCustomError(
            "amount_not_string",
            'an amount is a JSON string of ASCII digits such as "12.50", not a number',
        )
    if isinstance(value, str) and not AMOUNT_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "amount_format",
            'an amount is ASCII digits with an optional decimal point, such as "12.50" '
            "(no sign, exponent or spaces)",
        )
    return Decimal(value)


AmountIn = Annotated[Decimal, BeforeValidator(_amount), Field(ge=0, max_digits=14)]
"""A request's amount of money: a JSON string such as "12.50"; its currency's decimals are
checked by `check_minor_units` where both are known."""


def minor_units(currency: str) -> int | None:
    """The decimals of `currency` (ISO 4217: JPY 0, EUR 2, BHD 3); None if it is not an ISO 4217
    code or has none (gold, the test code)."""
    try:
        return Iso4217(currency).exponent
    except ValueError:
        return None


def _currency(value: str) -> str:
    if minor_units(value) is None:
        raise PydanticCustomError(
            "currency_unknown", "not an ISO 4217 currency with minor units, such as EUR"
        )
    return value


CurrencyIn = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]


def check_minor_units(amount: Decimal, currency: str) -> None:
    """Raise a ValueError (a pydantic error `amount_minor_units`) if `amount` has more decimals
    than `currency` has (ISO 4217)."""
    digits = minor_units(currency)
    exponent = amount.as_tuple().exponent
    if digits is not None and isinstance(exponent, int) and -exponent > digits:
        raise PydanticCustomError(
            "amount_minor_units",
            "an amount in {currency} has at most {digits} decimals",
            {"currency": currency, "digits": digits},
        )


def _nul_in(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return _nul_in(value.keys()) or _nul_in(value.values())
    if isinstance(value, Iterable) and not isinstance(value, bytes | BaseModel):
        return any(_nul_in(item) for item in value)
    return False


class RequestModel(BaseModel):
    """The base of every request body: unknown fields are refused, nothing is coerced ("5" is not
    5, 1 is not true), and no string holds a NUL, which PostgreSQL cannot store in text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # After the field's own validation: a nested model has checked its own fields, so the error
    # names the innermost field.
    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _nul_in(value):
            raise PydanticCustomError("string_nul", "must not contain the NUL character (U+0000)")
        return value
