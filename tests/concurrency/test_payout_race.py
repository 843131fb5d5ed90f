"""No payout takes money twice. First the race test proves it can see the race: with the
balance's lock off (what is available read in a transaction of its own) concurrent payouts of
one store pay out more than it has; with it on, they pay out exactly its balance. On SQLite,
whose single writer serialises the writes, and on PostgreSQL, where the transactions really
interleave and only `FOR UPDATE` on the store's balance keeps them apart."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agora.auth import Principal
from agora.infra import InfraSettings
from agora.messaging import Database, sqlite_url, utcnow
from agora.runtime.supervisor import ensure_database
from agora.services.payments import store
from agora.services.payments.ledger import Share, capture_entries
from agora.services.payments.payouts import InsufficientFunds, request_payout
from agora.services.payments.repository import Ledger, Payouts

BALANCE = 10_000  # cents the store is owed
PAYOUT = 1_000
REQUESTS = 40  # four times what the balance covers
CONNECTIONS = 20
SELLER = Principal(
    user_id="seller-1",
    role="seller",
    plan="free",
    email="seller@example.com",
    session_id="s",
    expires_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
)


class Unit:
    """What a payout's request uses of `PaymentsUnitOfWork`."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.payouts = Payouts(conn)
        self.ledger = Ledger(conn)

    def after_commit(self, callback: Callable[[], None]) -> None:
        pass


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def payments_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "payments.db")
    else:
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env("payout_race")["AGORA_DATABASE_URL_TEMPLATE"]
        url = template.replace("{service}", "payments")
        await ensure_database(url)
    db = Database(url, store.metadata, pool_size=CONNECTIONS)
    await db.create_tables()
    async with db.write() as conn:
        await conn.execute(
            store.store_owners.insert().values(store_id="shop", seller_id="seller-1")
        )
        await Ledger(conn).post(
            "capture:p1",
            "capture",
            "EUR",
            capture_entries([Share("shop", BALANCE, 0)]),
            payment_id=None,
            order_id=None,
            now=utcnow() - dt.timedelta(days=30),
        )
    yield db
    await db.dispose()


async def race(db: Database, *, locking: bool) -> tuple[int, int]:
    """REQUESTS concurrent payouts of PAYOUT each; returns (paid out, balance owed after)."""

    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[Unit]:
        async with db.write() as conn:
            yield Unit(conn)

    start = asyncio.Barrier(REQUESTS)

    async def pay(n: int) -> int:
        await start.wait()  # every request is ready before the first one reads the balance
        try:
            payout, _ = await request_payout(
                unit_of_work,  # type: ignore[arg-type]
                SELLER,
                "shop",
                "EUR",
                Decimal(PAYOUT) / 100,
                f"key-{n}",
                holding=dt.timedelta(days=7),
                wake=lambda: None,
                locking=locking,
            )
        except InsufficientFunds:
            return 0
        return payout.amount

    paid = sum(await asyncio.gather(*(pay(n) for n in range(REQUESTS))))
    async with db.read() as conn:
        owed = -int(
            await conn.scalar(
                select(func.sum(store.ledger_entries.c.amount)).where(
                    store.ledger_entries.c.account == "store:shop"
                )
            )
        )
    return paid, owed


async def test_race_test_sees_a_double_payout_when_the_lock_is_off(payments_db: Database) -> None:
    paid, owed = await race(payments_db, locking=False)
    assert paid > BALANCE, "the race test must be able to see money paid out twice"
    assert owed < 0


async def test_the_lock_pays_out_exactly_the_balance(payments_db: Database) -> None:
    paid, owed = await race(payments_db, locking=True)
    assert paid == BALANCE
    assert owed == 0
