"""Ticketing's demo seed on a real database: once per installation, however many times or
replicas start it. On PostgreSQL, replicas starting together really race for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agora.infra import InfraSettings
from agora.runtime.runtime import Runtime
from agora.runtime.supervisor import ensure_database
from agora.services.ticketing import store
from agora.services.ticketing.bootstrap import TicketingService
from agora.services.ticketing.seed import DEMO_EVENT_TITLE, DEMO_STORE, DEMO_VENUE
from agora.settings import Settings

pytestmark = pytest.mark.asyncio

REPLICAS = 4

Replica = Callable[[], TicketingService]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def replica(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replica]:
    """Builds ticketing services on one database (its schema current), as replicas would be."""
    template = None
    if request.param == "postgresql":
        servers: InfraSettings = request.getfixturevalue("servers")
        template = servers.isolated_env("seed")["AGORA_DATABASE_URL_TEMPLATE"]
        await ensure_database(template.replace("{service}", "ticketing"))
    (tmp_path / "agora").mkdir()
    built: list[TicketingService] = []

    def build() -> TicketingService:
        settings = Settings(
            data_dir=tmp_path / "agora", database_url_template=template, kafka_bootstrap=None
        )
        (service,) = Runtime(settings, names=["ticketing"]).services
        assert isinstance(service, TicketingService)
        built.append(service)
        return service

    await build().migrate()
    yield build
    for service in built:
        await service.platform.db.dispose()


async def seeded(service: TicketingService) -> tuple[int, int, int, int]:
    """(venues, events, sessions on sale, outbox rows) in ticketing's database."""
    tables = service.platform.db.metadata.tables
    async with service.platform.db.read() as conn:

        async def count(name: str, *where: object) -> int:
            query = select(func.count()).select_from(tables[name]).where(*where)  # type: ignore[arg-type]
            return int(await conn.scalar(query) or 0)

        return (
            await count("venues"),
            await count("events", tables["events"].c.title == DEMO_EVENT_TITLE),
            await count("sessions", tables["sessions"].c.opens_at.is_not(None)),
            await count("outbox"),
        )


async def test_the_demo_concert_is_seeded_on_the_first_start_only(replica: Replica) -> None:
    first = replica()
    await first.start()
    # One EventScheduled and a SalesOpened per session, in the outbox like an organizer's.
    assert await seeded(first) == (1, 1, 2, 3)
    async with first.platform.db.read() as conn:
        venue = await store.venue_by_id(conn, DEMO_VENUE)
        known, seller = await store.store_owner(conn, DEMO_STORE)
    assert venue is not None
    assert (venue.store_id, venue.seats, venue.capacity) == (DEMO_STORE, 200, 300)
    assert (known, seller) == (True, None)  # without waiting for catalog's StoreOpened

    await replica().start()  # a restart
    assert await seeded(first) == (1, 1, 2, 3)


@pytest.mark.postgres
@pytest.mark.parametrize("replica", ["postgresql"], indirect=True)
async def test_replicas_starting_together_seed_it_once(replica: Replica) -> None:
    replicas = [replica() for _ in range(REPLICAS)]
    await asyncio.gather(*(service.start() for service in replicas))
    assert await seeded(replicas[0]) == (1, 1, 2, 3)
