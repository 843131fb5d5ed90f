"""A ticket is admitted once, however many scanners read its code at the same moment. The race
test first proves it can see the race: scanners that look whether the ticket was used and then
mark it, in two steps, admit it more than once; ticketing's check-in (one conditional update)
admits it exactly once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from agora.infra import InfraSettings
from agora.messaging import Database, sqlite_url, utcnow
from agora.runtime.supervisor import ensure_database
from agora.services.ticketing import store
from agora.services.ticketing.repository import TicketingRepository

SCANNERS = 40


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "ticketing.db")
    else:
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env("checkinrace")["AGORA_DATABASE_URL_TEMPLATE"]
        url = template.replace("{service}", "ticketing")
        await ensure_database(url)
    database = Database(url, store.metadata, pool_size=SCANNERS // 2)
    await database.create_tables()
    async with database.write() as conn:
        await conn.execute(
            insert(store.tickets).values(
                id="t1",
                order_id="o1",
                place_no=0,
                customer_id="c1",
                event_id="e1",
                session_id="s1",
                category="standard",
                seat_id="main-A-1",
                area_id=None,
                price=Decimal("10"),
                currency="EUR",
                attendee=None,
                code="code",
                state=store.VALID,
                issued_at=utcnow(),
                checked_in_at=None,
                checked_in_gate=None,
            )
        )
    yield database
    await database.dispose()


async def scan_naively(db: Database, gate: str) -> bool:
    """Look, then mark: the mistake the race test must be able to see."""
    async with db.read() as conn:
        used = await conn.scalar(
            select(store.tickets.c.checked_in_at).where(store.tickets.c.id == "t1")
        )
    if used is not None:
        return False
    async with db.write() as conn:
        await conn.execute(
            update(store.tickets)
            .where(store.tickets.c.id == "t1")
            .values(checked_in_at=utcnow(), checked_in_gate=gate)
        )
    return True


async def scan(db: Database, gate: str) -> bool:
    async with db.write() as conn:
        return await TicketingRepository(conn).check_in("t1", utcnow(), gate)


async def rush(db: Database, scanner: object) -> int:
    start = asyncio.Barrier(SCANNERS)

    async def one(n: int) -> bool:
        await start.wait()
        return await scanner(db, f"gate-{n}")  # type: ignore[operator, no-any-return]

    return sum(await asyncio.gather(*(one(n) for n in range(SCANNERS))))


async def test_race_test_sees_a_ticket_admitted_twice_when_scanners_look_then_mark(
    db: Database,
) -> None:
    assert await rush(db, scan_naively) > 1, "the race test must be able to see a double entry"


async def test_a_ticket_is_admitted_exactly_once(db: Database) -> None:
    assert await rush(db, scan) == 1
    async with db.read() as conn:
        used = (await conn.execute(select(store.tickets))).one()
    assert isinstance(used.checked_in_at, dt.datetime)
    assert used.checked_in_gate.startswith("gate-")
