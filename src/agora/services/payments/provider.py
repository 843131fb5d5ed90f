"""The card provider port, and the mock provider that stands in for the card network.

Test tokens: `tok_visa` succeeds; `tok_chargeDeclined` is declined; `tok_processing_error` fails
transiently twice per charge and then succeeds. Any other token is declined as invalid.
Charges carry an idempotency key, as real providers' APIs do: the same key never charges twice.
The mock keeps `FEE_RATE` of each charge as its fee (rounded half up to the currency's minor
units) and refunds no fee.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from agora.contracts.types import minor_units
from agora.messaging import new_id

__all__ = ["CardProvider", "Charge", "Declined", "MockCardProvider", "ProviderUnavailable"]


class ProviderUnavailable(Exception):
    """A transient failure: the same request may succeed later."""


class Declined(Exception):
    """The card was refused; retrying will not help."""


@dataclasses.dataclass(frozen=True, slots=True)
class Charge:
    id: str
    amount: Decimal
    currency: str
    fee: Decimal = Decimal(0)
    """What the provider kept of the amount."""


class CardProvider(Protocol):
    async def charge(
        self, idempotency_key: str, token: str, amount: Decimal, currency: str
    ) -> Charge:
        """Charge once per idempotency key; raises Declined or ProviderUnavailable."""
        ...

    async def refund(
        self, idempotency_key: str, charge_id: str, amount: Decimal | None = None
    ) -> str:
        """Refund `amount` of a charge (all of it if None) once per idempotency key; returns
        the refund's id. Raises Declined for more than is left to refund."""
        ...

    async def transfer(
        self, idempotency_key: str, destination: str, amount: Decimal, currency: str
    ) -> str:
        """Send `amount` to a seller's `destination` once per idempotency key; returns the
        transfer's id. Raises Declined or ProviderUnavailable."""
        ...


class MockCardProvider:
    TRANSIENT_FAILURES = 2
    FEE_RATE = Decimal("0.014")

    def __init__(self) -> None:
        self._charges: dict[str, Charge] = {}
        self._failures: dict[str, int] = {}
        self._refunds: dict[str, str] = {}
        self._refunded: dict[str, Decimal] = {}
        self._transfers: dict[str, str] = {}

    async def charge(
        self, idempotency_key: str, token: str, amount: Decimal, currency: str
    ) -> Charge:
        if idempotency_key in self._charges:
            return self._charges[idempotency_key]
        if token == "tok_processing_error":
            failures = self._failures.get(idempotency_key, 0)
            if failures < self.TRANSIENT_FAILURES:
                self._failures[idempotency_key] = failures + 1
                raise ProviderUnavailable("processing error, try again")
        elif token == "tok_chargeDeclined":
            raise Declined("card declined")
        elif token != "tok_visa":
            raise Declined(f"invalid payment token {token!r}")
        unit = Decimal(1).scaleb(-(minor_units(currency) or 0))
        fee = (amount * self.FEE_RATE).quantize(unit, rounding=ROUND_HALF_UP)
        charge = Charge(id=f"ch_{new_id()}", amount=amount, currency=currency, fee=fee)
        self._charges[idempotency_key] = charge
        return charge

    async def refund(
        self, idempotency_key: str, charge_id: str, amount: Decimal | None = None
    ) -> str:
        if idempotency_key in self._refunds:
            return self._refunds[idempotency_key]
        charged = next((c for c in self._charges.values() if c.id == charge_id), None)
        if charged is not None:
            left = charged.amount - self._refunded.get(charge_id, Decimal(0))
            wanted = left if amount is None else amount
            if wanted > left:
                raise Declined(f"refund of {wanted} exceeds the {left} left on {charge_id}")
            self._refunded[charge_id] = self._refunded.get(charge_id, Decimal(0)) + wanted
        return self._refunds.setdefault(idempotency_key, f"re_{new_id()}")

    async def transfer(
        self, idempotency_key: str, destination: str, amount: Decimal, currency: str
    ) -> str:
        return self._transfers.setdefault(idempotency_key, f"tr_{new_id()}")
