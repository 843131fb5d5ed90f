"""Every service's Alembic history builds exactly the schema its code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agora.messaging import Service
from agora.messaging.migrations import managed_names
from agora.runtime.runtime import SERVICE_NAMES, Runtime
from agora.settings import Settings

SERVICES = SERVICE_NAMES


@pytest.fixture
def services(tmp_path: Path) -> dict[str, Service]:
    runtime = Runtime(Settings(data_dir=tmp_path))
    return {service.name: service for service in runtime.services}


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_match_the_declared_schema(
    services: dict[str, Service], name: str
) -> None:
    service = services[name]
    db = service.platform.db
    await service.migrate()
    await service.migrate()  # a second run finds nothing to do
    async with db.read() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"include_name": managed_names(db.metadata)}),
                db.metadata,
            )
        )
        tables = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    await db.dispose()
    assert differences == []
    assert {"outbox", "inbox", "alembic_version"} <= set(tables)
