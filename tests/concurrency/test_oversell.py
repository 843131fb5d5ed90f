"""No oversell under concurrency. First the race test proves it can see the race: with the
reservation's locking switched off it must observe an oversell; with it on, exactly the stock
is sold. Both on SQLite, whose single writer serialises the writes, and on PostgreSQL, where
concurrent transactions really interleave and only the locking rule keeps the count right. Then
the same contention end to end: 200 buyers, 50 units."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from agora.infra import InfraSettings
from agora.messaging import Database, sqlite_url
from agora.runtime.supervisor import ensure_database
from agora.services.inventory import store
from agora.services.inventory.locking import Shortage, reserve_stock
from harness import FINAL, AgoraProcess, eventually, product

STOCK = 50
BUYERS = 200
CONNECTIONS = 20
"""Per pool, doubled by its overflow: 40 transactions at once on PostgreSQL, so that many check
the count before any of them writes it."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def inventory_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "inventory.db")
    else:
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env("oversell")["AGORA_DATABASE_URL_TEMPLATE"]
        url = template.replace("{service}", "inventory")
        await ensure_database(url)
    db = Database(url, store.metadata, pool_size=CONNECTIONS)
    await db.create_tables()
    async with db.write() as conn:
        await conn.execute(
            insert(store.stock).values(product_id="hot", available=STOCK, reserved=0, sold=0)
        )
    yield db
    await db.dispose()


async def race(db: Database, *, locking: bool) -> tuple[int, int, int]:
    """BUYERS concurrent reservations of one unit; returns (granted, available, reserved)."""

    start = asyncio.Barrier(BUYERS)

    async def buy() -> bool:
        await start.wait()  # every buyer is ready before the first one reads the count
        try:
            await reserve_stock(db, [("hot", 1)], locking=locking)
        except Shortage:
            return False
        return True

    granted = sum(await asyncio.gather(*(buy() for _ in range(BUYERS))))
    async with db.read() as conn:
        row = (await conn.execute(select(store.stock))).one()
    return granted, row.available, row.reserved


async def test_race_test_sees_the_oversell_when_locking_is_off(inventory_db: Database) -> None:
    granted, available, reserved = await race(inventory_db, locking=False)
    assert granted > STOCK, "the race test must be able to see an oversell"
    assert reserved == granted
    assert available + reserved > STOCK  # units conjured out of thin air


async def test_locking_sells_exactly_the_stock(inventory_db: Database) -> None:
    granted, available, reserved = await race(inventory_db, locking=True)
    assert granted == STOCK
    assert available == 0
    assert reserved == STOCK


@pytest.mark.e2e
@pytest.mark.slow
def test_200_concurrent_orders_for_50_units_sell_exactly_50(
    agora_factory: Callable[..., AgoraProcess],
) -> None:
    agora = agora_factory([product("hot", STOCK)])
    buyers = [agora.headers(f"buyer-{n}") for n in range(10)]

    async def place_all() -> list[str | None]:
        limits = httpx.Limits(max_connections=BUYERS)
        async with httpx.AsyncClient(base_url=agora.base_url, limits=limits, timeout=60) as client:

            async def place(n: int) -> str | None:
                response = await client.post(
                    "/api/orders",
                    json={
                        "items": [{"product_id": "hot", "quantity": 1}],
                        "payment_token": "tok_visa",
                    },
                    headers={"Idempotency-Key": str(uuid.uuid4()), **buyers[n % len(buyers)]},
                )
                if response.status_code == 409:  # refused at the door: orders knows it is gone
                    assert response.json()["type"] == "/problems/sold-out", response.text
                    return None
                assert response.status_code == 202, response.text
                return str(response.json()["id"])

            return await asyncio.gather(*(place(n) for n in range(BUYERS)))

    placed = asyncio.run(place_all())
    order_ids = [order_id for order_id in placed if order_id is not None]
    refused_at_the_door = placed.count(None)
    assert len(set(order_ids)) == BUYERS - refused_at_the_door

    def all_final() -> list[dict[str, object]] | None:
        orders = [agora.order(order_id) for order_id in order_ids]
        return orders if all(o["status"] in FINAL for o in orders) else None

    orders = eventually(all_final, timeout=60, interval=0.2, what="every order final")
    statuses = [o["status"] for o in orders]
    assert statuses.count("CONFIRMED") == STOCK
    assert statuses.count("CANCELLED") + refused_at_the_door == BUYERS - STOCK
    assert all("out of stock" in str(o["cancel_reason"]) for o in orders if o["cancel_reason"])
    stock = eventually(
        lambda: (s := agora.stock("hot"))["reserved"] == 0 and s, what="holds settled"
    )
    assert (stock["available"], stock["reserved"], stock["sold"]) == (0, 0, STOCK)
