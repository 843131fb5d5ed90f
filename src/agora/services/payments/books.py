"""What the ledger's routes read: a payment's postings, a store's balance and entries (for its
seller and admins), the platform's accounts."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.ext.asyncio import AsyncConnection

from agora.auth import Principal, may_read
from agora.messaging import Database, utcnow
from agora.problems import NotFound
from agora.services.payments import store
from agora.services.payments.ledger import store_account

__all__ = [
    "CSV_PAGE",
    "Posting",
    "StoreEntry",
    "StoreNotFound",
    "available",
    "check_reader",
    "platform_accounts",
    "postings_of",
    "store_balances",
    "store_entries",
]

CSV_PAGE = 1_000
"""Entries read per query while a CSV is streamed."""


class StoreNotFound(NotFound):
    def __init__(self, store_id: str) -> None:
        super().__init__("store-not-found", "Store not found", f"no store {store_id}")


@dataclasses.dataclass(frozen=True, slots=True)
class Posting:
    id: str
    kind: str
    currency: str
    posted_at: dt.datetime
    entries: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class StoreEntry:
    id: int
    posted_at: dt.datetime
    kind: str
    order_id: str | None
    currency: str
    amount: int
    """Positive on the debit side, as stored: a sale is negative here."""


async def postings_of(db: Database, payment_id: str) -> list[Posting]:
    async with db.read() as conn:
        rows = await store.postings_of(conn, payment_id)
    grouped: dict[str, Posting] = {}
    for row in rows:
        posting = grouped.get(row.id) or Posting(row.id, row.kind, row.currency, row.created_at, ())
        grouped[row.id] = dataclasses.replace(
            posting, entries=(*posting.entries, (row.account, int(row.amount)))
        )
    return list(grouped.values())


async def check_reader(conn: AsyncConnection, caller: Principal, store_id: str) -> None:
    """`StoreNotFound` unless payments knows the store and `caller` is its seller or an
    admin."""
    known, seller_id = await store.owner_of_store(conn, store_id)
    if not known or not may_read(caller, seller_id):
        raise StoreNotFound(store_id)


def available(balance: int, matured: int) -> int:
    """What of a store's balance may be paid out, from the sums `store.balances` reads (debit
    positive): what it was owed before the holding period less every debit since, never more
    than it is owed now, never below zero."""
    return max(0, min(-balance, -matured))


async def store_balances(
    db: Database, caller: Principal, store_id: str, holding: dt.timedelta
) -> list[tuple[str, int, int]]:
    """The store's balance per currency and what of it is available (entries older than
    `holding`, and never more than the balance): `(currency, balance, available)`, from the
    seller's side (what the platform owes is positive)."""
    async with db.read() as conn:
        await check_reader(conn, caller, store_id)
        rows = await store.balances(conn, store_account(store_id), utcnow() - holding)
    return [
        (currency, -balance, available(balance, matured)) for currency, balance, matured in rows
    ]


async def store_entries(
    db: Database, caller: Principal, store_id: str, *, after: int, limit: int
) -> list[StoreEntry]:
    async with db.read() as conn:
        await check_reader(conn, caller, store_id)
        rows = await store.entries_of(conn, store_account(store_id), after=after, limit=limit)
    return [
        StoreEntry(
            id=int(row.id),
            posted_at=row.created_at,
            kind=row.kind,
            order_id=row.order_id,
            currency=row.currency,
            amount=int(row.amount),
        )
        for row in rows
    ]


async def platform_accounts(db: Database) -> list[tuple[str, str, int]]:
    async with db.read() as conn:
        rows = await store.platform_balances(conn)
    return [(row.account, row.currency, int(row.balance)) for row in rows]
