"""The ledger's arithmetic: allocation by largest remainder, commission, and the postings of a
capture, a fee and refunds, property-tested: no unit of money is made or lost."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.services.payments.ledger import (
    CLEARING,
    COMMISSION,
    FEES,
    Share,
    allocate,
    capture_entries,
    commissions,
    fee_entries,
    from_minor,
    refund_entries,
    refunded_part,
    store_account,
    take_back,
    to_minor,
)

totals = st.integers(min_value=0, max_value=10**12)
weights = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(
    lambda ws: sum(ws) > 0
)
rates = st.decimals(min_value=0, max_value=1, places=4)


@given(totals, weights)
def test_an_allocation_sums_to_its_total_and_each_part_is_its_share_rounded(
    total: int, ws: list[int]
) -> None:
    parts = allocate(total, ws)

    assert sum(parts) == total
    for part, weight in zip(parts, ws, strict=True):
        exact = Decimal(total) * weight / sum(ws)
        assert exact - 1 < part < exact + 1
        if weight == 0:
            assert part == 0


def test_leftover_units_go_to_the_largest_remainders_then_to_the_earlier() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [3, 3, 4]) == [3, 3, 4]
    assert allocate(2, [1, 2, 2]) == [0, 1, 1]  # exact 0.4, 0.8, 0.8
    assert allocate(0, [0, 0]) == [0, 0]
    with pytest.raises(ValueError, match="zero weights"):
        allocate(1, [0, 0])
    with pytest.raises(ValueError, match="negative"):
        allocate(1, [2, -1])


@given(st.lists(st.tuples(st.integers(0, 10**9), rates), min_size=1, max_size=10))
def test_commissions_are_the_rounded_total_shared_within_a_unit_of_each_exact_value(
    sold: list[tuple[int, Decimal]],
) -> None:
    amounts = [amount for amount, _ in sold]
    taken = commissions(amounts, [rate for _, rate in sold])

    exact = [amount * rate for amount, rate in sold]
    assert abs(sum(taken) - sum(exact)) <= Decimal("0.5")
    for commission, amount, value in zip(taken, amounts, exact, strict=True):
        assert 0 <= commission <= amount
        assert abs(commission - value) < 1


def test_commission_on_three_stores_is_the_total_rounded_once() -> None:
    # Each 0.5 cent rounded on its own makes 0 (half to even) or 3; their total, 1.5, makes 2.
    assert commissions([5, 5, 5], [Decimal("0.1")] * 3) == [1, 1, 0]


def balanced(entries: list[tuple[str, int]]) -> bool:
    return sum(amount for _, amount in entries) == 0


shares_strategy = st.lists(
    st.tuples(st.integers(0, 10**7), rates, st.sampled_from(["s1", "s2", None])),
    min_size=1,
    max_size=6,
).map(
    lambda sold: [
        Share(store, amount, commission, session_id=f"session-{i % 2}")
        for (amount, _, store), commission, i in zip(
            sold,
            commissions([a for a, _, _ in sold], [r for _, r, _ in sold]),
            range(len(sold)),
            strict=True,
        )
    ]
)


@given(shares_strategy, st.lists(st.integers(1, 10**7), max_size=8), st.integers(0, 10**5))
def test_captures_refunds_and_fees_balance_and_refunding_everything_returns_every_unit(
    shares: list[Share], refunds: list[int], fee: int
) -> None:
    total = sum(share.amount for share in shares)
    fee = min(fee, total)
    postings = [capture_entries(shares), fee_entries(fee)]
    refunded = [0] * len(shares)
    for asked in refunds:
        left = total - sum(refunded)
        amount = min(asked, left)
        parts = take_back(list(zip(shares, refunded, strict=True)), amount, "session-1")
        assert sum(part.amount for part in parts) == amount
        refunded = [r + part.amount for r, part in zip(refunded, parts, strict=True)]
        postings.append(refund_entries(parts))
    # Whatever is left is refunded whole, as a cancelled order is.
    last = take_back(list(zip(shares, refunded, strict=True)), total - sum(refunded), None)
    postings.append(refund_entries(last))

    assert all(balanced(entries) for entries in postings)
    balances: dict[str, int] = {}
    for entries in postings:
        for account, amount in entries:
            balances[account] = balances.get(account, 0) + amount
    # Everything went back: stores and commission are square; the platform is out the fee.
    assert {account: amount for account, amount in balances.items() if amount} == (
        {FEES: fee, CLEARING: -fee} if fee else {}
    )


def test_a_capture_owes_each_store_its_share_less_commission() -> None:
    shares = [Share("s1", 10_000, 1_000), Share("s2", 2_500, 125), Share(None, 99, 0)]

    assert sorted(capture_entries(shares)) == sorted(
        [
            (CLEARING, 12_599),
            (store_account("s1"), -9_000),
            (store_account("s2"), -2_375),
            ("platform:sales", -99),
            (COMMISSION, -1_125),
        ]
    )


def test_a_tickets_refund_comes_from_its_sessions_share_and_its_commission_with_it() -> None:
    goods = Share("s1", 3_000, 300)
    tickets = Share("s2", 9_000, 450, session_id="session-1")

    parts = take_back([(goods, 0), (tickets, 0)], 3_000, "session-1")

    assert [part.amount for part in parts] == [0, 3_000]
    assert parts[1].commission == 150
    # More than the session has left comes from every share in proportion to what it has left.
    spread = take_back([(goods, 0), (tickets, 8_000)], 2_000, "session-1")
    assert [part.amount for part in spread] == [1_500, 500]
    with pytest.raises(ValueError, match="exceeds"):
        take_back([(goods, 0)], 3_001, None)


@given(st.integers(1, 10**6), rates, st.lists(st.integers(1, 10**5), min_size=1, max_size=10))
def test_refunding_a_share_in_parts_returns_exactly_its_commission(
    amount: int, rate: Decimal, pieces: list[int]
) -> None:
    (commission,) = commissions([amount], [rate])
    share = Share("s", amount, commission)
    refunded = returned = 0
    for piece in pieces:
        piece = min(piece, amount - refunded)
        part = refunded_part(share, refunded, piece)
        assert 0 <= part.commission <= part.amount
        refunded += piece
        returned += part.commission
    rest = refunded_part(share, refunded, amount - refunded)

    assert returned + rest.commission == commission


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        (Decimal("12.34"), "EUR", 1234),
        (Decimal("12.3400"), "EUR", 1234),
        (Decimal("500"), "JPY", 500),
        (Decimal("1.234"), "BHD", 1234),
    ],
)
def test_minor_units_follow_the_currency(amount: Decimal, currency: str, units: int) -> None:
    assert to_minor(amount, currency) == units
    assert from_minor(units, currency) == amount


def test_an_amount_finer_than_its_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal("1.5"), "JPY")
