"""The mock card provider's test tokens and its idempotency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agora.services.payments.provider import (
    Charge,
    Declined,
    MockCardProvider,
    ProviderUnavailable,
)

AMOUNT = Decimal("24.90")


@pytest.fixture
def provider() -> MockCardProvider:
    return MockCardProvider()


async def test_tok_visa_charges_the_amount(provider: MockCardProvider) -> None:
    charge = await provider.charge("pay-1", "tok_visa", AMOUNT, "EUR")

    assert isinstance(charge, Charge)
    assert (charge.amount, charge.currency) == (Decimal("24.90"), "EUR")
    assert charge.id.startswith("ch_")


async def test_a_charge_is_idempotent_per_key(provider: MockCardProvider) -> None:
    first = await provider.charge("pay-1", "tok_visa", AMOUNT, "EUR")
    again = await provider.charge("pay-1", "tok_visa", AMOUNT, "EUR")
    other = await provider.charge("pay-2", "tok_visa", AMOUNT, "EUR")

    assert again == first
    assert other.id != first.id


async def test_tok_charge_declined_is_declined_every_time(provider: MockCardProvider) -> None:
    for _ in range(3):
        with pytest.raises(Declined, match="declined"):
            await provider.charge("pay-1", "tok_chargeDeclined", AMOUNT, "EUR")


@pytest.mark.parametrize("token", ["tok_unknown", "", "TOK_VISA", "tok_visa "])
async def test_other_tokens_are_declined_as_invalid(provider: MockCardProvider, token: str) -> None:
    with pytest.raises(Declined, match="invalid payment token"):
        await provider.charge("pay-1", token, AMOUNT, "EUR")


async def test_processing_error_fails_exactly_twice_per_key_then_succeeds(
    provider: MockCardProvider,
) -> None:
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")

    charge = await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")
    again = await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")

    assert (charge.amount, charge.currency) == (AMOUNT, "EUR")
    assert again == charge


async def test_processing_error_counts_failures_per_key(provider: MockCardProvider) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")
    # Another charge has failures of its own: one failure of pay-1 lends it nothing.
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.charge("pay-2", "tok_processing_error", AMOUNT, "EUR")
    with pytest.raises(ProviderUnavailable):
        await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")

    first = await provider.charge("pay-1", "tok_processing_error", AMOUNT, "EUR")
    second = await provider.charge("pay-2", "tok_processing_error", AMOUNT, "EUR")
    assert first.id != second.id


async def test_a_declined_charge_is_not_remembered(provider: MockCardProvider) -> None:
    with pytest.raises(Declined):
        await provider.charge("pay-1", "tok_chargeDeclined", AMOUNT, "EUR")
    charge = await provider.charge("pay-1", "tok_visa", AMOUNT, "EUR")
    assert charge.amount == AMOUNT


async def test_refunds_are_idempotent_per_key(provider: MockCardProvider) -> None:
    charge = await provider.charge("pay-1", "tok_visa", AMOUNT, "EUR")

    first = await provider.refund("refund-1", charge.id)
    again = await provider.refund("refund-1", charge.id)
    other = await provider.refund("refund-2", charge.id)

    assert first.startswith("re_")
    assert again == first
    assert other != first
