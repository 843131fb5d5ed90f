"""Every service's Alembic history builds exactly the schema its code declares; the platform's
branch (outbox and inbox) reaches every service database, old ones included, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url

from agora.infra import InfraSettings
from agora.messaging import Database, Service
from agora.messaging.envelope import utcnow
from agora.messaging.inbox import claim_inbox
from agora.messaging.migrations import ENVIRONMENT, PLATFORM_VERSIONS, managed_names, migrate
from agora.runtime.runtime import SERVICE_NAMES, Runtime
from agora.runtime.supervisor import ensure_database
from agora.settings import Settings

SERVICES = SERVICE_NAMES

# Every service's revisions as they stood before the platform branch: each 0001 made its own
# outbox and inbox. Frozen here so that a database of that time can be made again.
BEFORE_PLATFORM = Path(__file__).parent / "migrations_before_platform"
OLDER = tuple(name for name in SERVICES if (BEFORE_PLATFORM / name).is_dir())
"""The services whose databases predate the platform branch (ticketing came after it)."""

UNPUBLISHED_EVENT = "0193a1b2-0000-7000-8000-000000000001"
APPLIED_EVENT = "0193a1b2-0000-7000-8000-000000000002"

Services = Callable[[str], Awaitable[dict[str, Service]]]


@pytest.fixture
def services(tmp_path: Path) -> dict[str, Service]:
    runtime = Runtime(Settings(data_dir=tmp_path))
    return {service.name: service for service in runtime.services}


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def make_services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    """`await make_services(label)`: every service, each with an empty database of its own (a
    SQLite file, or a PostgreSQL database dropped after the test)."""
    servers: InfraSettings | None = (
        request.getfixturevalue("servers") if request.param == "postgresql" else None
    )
    made: list[Service] = []

    async def make(label: str) -> dict[str, Service]:
        data_dir = tmp_path / label
        data_dir.mkdir()
        template = servers.isolated_env(label)["AGORA_DATABASE_URL_TEMPLATE"] if servers else None
        runtime = Runtime(Settings(data_dir=data_dir, database_url_template=template))
        for service in runtime.services:
            await ensure_database(service.platform.db.url)
            made.append(service)
        return {service.name: service for service in runtime.services}

    yield make
    for service in made:
        await service.platform.db.dispose()
        if servers:
            await drop_database(service.platform.db.url)


async def drop_database(url: str) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(
        host=target.host,
        port=target.port,
        user=target.username,
        password=target.password,
        database="postgres",
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await admin.close()


def heads(*histories: Path) -> set[str]:
    """The revisions `alembic_version` holds once `histories` are applied: their heads but a
    head another one depends on (the platform's first revision, while no other follows it)."""
    script = ScriptDirectory(str(ENVIRONMENT), version_locations=[str(path) for path in histories])
    return set(script.get_heads(consider_depends_on=True))


async def applied(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def differences(db: Database) -> list[Any]:
    """What separates `db`'s schema from the one its code declares."""
    async with db.read() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"include_name": managed_names(db.metadata)}),
                db.metadata,
            )
        )


def reflected(sync: Connection) -> dict[str, dict[str, Any]]:
    """Every table as the database describes it: columns, keys, constraints and indexes."""
    inspector = inspect(sync)

    def ordered(items: list[Any]) -> list[str]:
        # default=str: a partial index's WHERE is a clause object, equal by its SQL text only.
        return sorted(json.dumps(item, sort_keys=True, default=str) for item in items)

    return {
        table: {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                for column in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": ordered(inspector.get_foreign_keys(table)),
            "unique": ordered(inspector.get_unique_constraints(table)),
            "indexes": ordered(inspector.get_indexes(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


async def schema(db: Database) -> dict[str, dict[str, Any]]:
    async with db.read() as conn:
        return await conn.run_sync(reflected)


async def write_platform_rows(service: Service) -> None:
    """An unpublished event in the outbox and an applied one in the inbox."""
    platform = service.platform
    async with platform.db.write() as conn:
        await conn.execute(
            platform.outbox.insert().values(
                event_id=UNPUBLISHED_EVENT,
                topic="orders",
                key="order-1",
                value=b'{"type": "OrderPlaced"}',
                created_at=utcnow(),
            )
        )
        await claim_inbox(conn, platform.inbox, "analytics", [APPLIED_EVENT])


async def platform_rows(service: Service) -> dict[str, list[Any]]:
    platform = service.platform
    async with platform.db.read() as conn:
        return {
            table.name: [tuple(row) for row in await conn.execute(select(table))]
            for table in (platform.outbox, platform.inbox)
        }


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_match_the_declared_schema(
    services: dict[str, Service], name: str
) -> None:
    service = services[name]
    db = service.platform.db
    await service.migrate()
    await service.migrate()  # a second run finds nothing to do
    found = await differences(db)
    async with db.read() as conn:
        tables = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    versions = await applied(db)
    await db.dispose()
    assert found == []
    assert {"outbox", "inbox", "alembic_version"} <= set(tables)
    assert versions == heads(PLATFORM_VERSIONS, service.migrations)


@pytest.mark.parametrize("name", OLDER)
async def test_a_database_made_before_the_platform_branch_upgrades_in_place(
    make_services: Services, name: str
) -> None:
    old = (await make_services("old"))[name]
    new = (await make_services("new"))[name]
    await migrate(old.platform.db, BEFORE_PLATFORM / name, platform=())
    await write_platform_rows(old)
    rows = await platform_rows(old)

    await old.migrate()
    await new.migrate()

    assert await platform_rows(old) == rows
    versions = heads(PLATFORM_VERSIONS, old.migrations)
    assert await applied(old.platform.db) == await applied(new.platform.db) == versions
    assert await schema(old.platform.db) == await schema(new.platform.db)
    assert await differences(old.platform.db) == []


def write_trace_headers_revision(folder: Path) -> str:
    """A next platform revision (the coming trace headers), in `folder`, on top of the
    platform's head; returns its id."""
    (head,) = heads(PLATFORM_VERSIONS)
    folder.mkdir()
    (folder / "platform_9999_trace_headers.py").write_text(
        f'''"""the outbox keeps each event's trace headers"""

import sqlalchemy as sa
from alembic import op

revision = "platform_9999"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("trace_headers", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("trace_headers")
'''
    )
    return "platform_9999"


async def test_one_platform_revision_reaches_every_service_database(
    make_services: Services, tmp_path: Path
) -> None:
    revision = write_trace_headers_revision(tmp_path / "next_platform")
    platform = [PLATFORM_VERSIONS, tmp_path / "next_platform"]
    old = await make_services("old")
    new = await make_services("new")
    for name in SERVICES:
        if name in OLDER:
            await migrate(old[name].platform.db, BEFORE_PLATFORM / name, platform=())
        else:
            await old[name].migrate()
        await new[name].migrate()
    everyone = [*old.values(), *new.values()]
    for service in everyone:
        await write_platform_rows(service)
    rows = {id(service): await platform_rows(service) for service in everyone}

    for service in everyone:
        await migrate(service.platform.db, service.migrations, platform=platform)
        await migrate(service.platform.db, service.migrations, platform=platform)

    for service in everyone:
        async with service.platform.db.read() as conn:
            columns = await conn.run_sync(
                lambda sync: [column["name"] for column in inspect(sync).get_columns("outbox")]
            )
        assert "trace_headers" in columns, service.name
        assert revision in await applied(service.platform.db), service.name
        assert await applied(service.platform.db) == heads(*platform, service.migrations)
        # The declared columns only: the test's revision adds one the code does not know.
        assert await platform_rows(service) == rows[id(service)], service.name
