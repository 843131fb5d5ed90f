"""The ledger's arithmetic, without I/O: money in integer minor units, the largest-remainder
allocation that never makes or loses a unit, the commission on a payment's shares, and the
postings a capture, a fee and a refund make.

A posting is a set of entries on accounts that sums to zero per currency; an entry is positive
on the debit side. The accounts:

- `provider:clearing`: the buyers' money in transit at the card provider (debit: it owes us);
- `store:<id>`: what the platform owes a store's seller (credit, so its entries are negative);
- `platform:commission`: the platform's commission (credit);
- `platform:fees`: what the provider kept as its fee (debit: an expense of the platform);
- `platform:sales`: money of a share no store could be named for (credit);
- `platform:payouts`: money on its way to sellers, asked for and not yet transferred (credit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from agora.contracts.types import minor_units

__all__ = [
    "CLEARING",
    "COMMISSION",
    "FEES",
    "PAYOUTS",
    "SALES",
    "CommissionRates",
    "Entry",
    "Share",
    "allocate",
    "capture_entries",
    "commissions",
    "fee_entries",
    "from_minor",
    "payout_entries",
    "refund_entries",
    "refunded_part",
    "store_account",
    "take_back",
    "to_minor",
]

CLEARING = "provider:clearing"
COMMISSION = "platform:commission"
FEES = "platform:fees"
PAYOUTS = "platform:payouts"
SALES = "platform:sales"


@dataclasses.dataclass(frozen=True, slots=True)
class CommissionRates:
    """The share of a sale the platform keeps, by the seller's plan (a seller payments has not
    heard of, and the demo store, pay the free plan's rate)."""

    free: Decimal = Decimal("0.10")
    premium: Decimal = Decimal("0.05")

    def of(self, plan: str | None) -> Decimal:
        return self.premium if plan == "premium" else self.free


def store_account(store_id: str | None) -> str:
    """The account of what is owed to `store_id`'s seller (`platform:sales` if no store)."""
    return SALES if store_id is None else f"store:{store_id}"


def _exponent(currency: str) -> int:
    digits = minor_units(currency)
    return 2 if digits is None else digits


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` in `currency`'s minor units (cents for EUR, yen for JPY); a ValueError if it has
    more decimals than the currency has."""
    scaled = amount.scaleb(_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} has")
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    """`units` minor units of `currency` as an amount with the currency's decimals."""
    digits = _exponent(currency)
    return Decimal(units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def allocate(total: int, weights: Sequence[int | Decimal]) -> list[int]:
    """`total` split in proportion to `weights` (non-negative, not all zero unless `total` is
    0) by the largest-remainder method: every part is its exact share rounded down or up, the
    parts sum to `total` exactly, and the leftover units go to the largest remainders (ties to
    the earlier weight)."""
    if any(weight < 0 for weight in weights):
        raise ValueError("weights must not be negative")
    whole = sum(weights, Decimal(0))
    if whole == 0:
        if total:
            raise ValueError("cannot allocate a non-zero total over zero weights")
        return [0] * len(weights)
    return _rounded([Decimal(total) * Decimal(weight) / whole for weight in weights], total)


def _rounded(exact: Sequence[Decimal], total: int) -> list[int]:
    """`exact` values rounded down, then up by one for the largest remainders (ties to the
    earlier value) until they sum to `total` (which lies between the sum rounded down and that
    plus the number of values with a remainder)."""
    parts = [int(value.to_integral_value(rounding=ROUND_FLOOR)) for value in exact]
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """What one store sold in a payment (one session's tickets, or its goods), in minor units,
    and the commission the platform keeps of it."""

    store_id: str | None
    amount: int
    commission: int
    session_id: str | None = None

    @property
    def net(self) -> int:
        return self.amount - self.commission


def commissions(amounts: Sequence[int], rates: Sequence[Decimal]) -> list[int]:
    """The commission on each of `amounts` at its rate: together they are the exact total
    commission rounded half to even, shared out by the largest remainder, so each is within one
    unit of its exact value and none exceeds its amount."""
    exact = [Decimal(amount) * rate for amount, rate in zip(amounts, rates, strict=True)]
    total = int(sum(exact, Decimal(0)).to_integral_value(rounding=ROUND_HALF_EVEN))
    return _rounded(exact, total)


Entry = tuple[str, int]
"""An account and the amount on it, positive on the debit side."""


def take_back(
    shares: Sequence[tuple[Share, int]], amount: int, session_id: str | None
) -> list[Share]:
    """The parts of a payment's `shares` (each with what of it was refunded before) that a
    refund of `amount` takes back: from the session's shares if they have that much left,
    else from every share in proportion to what it has left (largest remainder). Parts are
    in the order of `shares`, one per share (zero where nothing is taken). A ValueError if the
    shares have less than `amount` left."""
    left = [share.amount - refunded for share, refunded in shares]
    if amount > sum(left):
        raise ValueError(f"a refund of {amount} exceeds the {sum(left)} left to refund")
    own = [i for i, (share, _) in enumerate(shares) if share.session_id == session_id]
    weights: list[int | Decimal] = list(left)
    if session_id is not None and sum(left[i] for i in own) >= amount:
        weights = [left[i] if i in own else 0 for i in range(len(shares))]
    taken = allocate(amount, weights)
    return [
        refunded_part(share, refunded, part)
        for (share, refunded), part in zip(shares, taken, strict=True)
    ]


def _merged(entries: list[Entry]) -> list[Entry]:
    totals: dict[str, int] = {}
    for account, amount in entries:
        totals[account] = totals.get(account, 0) + amount
    return [(account, amount) for account, amount in totals.items() if amount]


def capture_entries(shares: Sequence[Share]) -> list[Entry]:
    """A captured charge: the provider owes the whole amount; each store is owed its share less
    the commission, the platform the commissions."""
    entries: list[Entry] = [(CLEARING, sum(share.amount for share in shares))]
    entries += [(store_account(share.store_id), -share.net) for share in shares]
    entries.append((COMMISSION, -sum(share.commission for share in shares)))
    return _merged(entries)


def fee_entries(fee: int) -> list[Entry]:
    """The provider kept `fee` of a charge."""
    return _merged([(FEES, fee), (CLEARING, -fee)])


def refund_entries(parts: Sequence[Share]) -> list[Entry]:
    """Money back to the buyer: each part is taken back from its store (less its commission)
    and from the platform's commission; the provider pays it out."""
    entries: list[Entry] = [(CLEARING, -sum(part.amount for part in parts))]
    entries += [(store_account(part.store_id), part.net) for part in parts]
    entries.append((COMMISSION, sum(part.commission for part in parts)))
    return _merged(entries)


def refunded_part(share: Share, refunded_before: int, amount: int) -> Share:
    """The part of `share` that a refund of `amount` takes back after `refunded_before` of it
    was: its commission is what the commission of everything refunded so far comes to, less
    what earlier refunds took, so the whole share refunded returns its whole commission."""
    if refunded_before + amount > share.amount:
        raise ValueError(f"{refunded_before + amount} exceeds the share's {share.amount}")

    def commission_of(refunded: int) -> int:
        if share.amount == 0:
            return 0
        exact = Decimal(refunded * share.commission) / share.amount
        return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))

    commission = commission_of(refunded_before + amount) - commission_of(refunded_before)
    return Share(share.store_id, amount, commission, share.session_id)


def payout_entries(store_id: str, amount: int, stage: str) -> list[Entry]:
    """A payout of `amount` to `store_id`'s seller at `stage`: "asked" (it leaves the store's
    balance for the payouts in transit), "sent" (the provider transferred it), or "failed" (it
    goes back to the store)."""
    store = store_account(store_id)
    if stage == "asked":
        return [(store, amount), (PAYOUTS, -amount)]
    if stage == "sent":
        return [(PAYOUTS, amount), (CLEARING, -amount)]
    if stage == "failed":
        return [(PAYOUTS, amount), (store, -amount)]
    raise ValueError(f"no payout stage {stage!r}")
