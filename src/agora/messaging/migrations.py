"""Schema migrations (Alembic), one history per service, run on SQLite and PostgreSQL alike.

Every service keeps its revisions in its own `migrations/` folder; the environment and the
revision template are shared (`messaging/alembic/`). The target schema is the service's tables
plus the platform's outbox and inbox (`ServicePlatform.db.metadata`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData

from agora.messaging.sql import Database

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["make_revision", "managed_names", "migrate"]

ENVIRONMENT = Path(__file__).parent / "alembic"


def managed_names(metadata: MetaData) -> Callable[[str | None, str, Any], bool]:
    """Alembic's `include_name` filter: everything but what `metadata.info["unmanaged"]` names
    (by prefix): objects a migration creates by hand, such as full-text indexes."""
    unmanaged = tuple(metadata.info.get("unmanaged", ()))

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (name and unmanaged and name.startswith(unmanaged))

    return include


def _config(versions: Path, connection: Any, metadata: MetaData) -> Config:
    from alembic.config import Config  # imported when used: Alembic is slow to import

    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    return config


async def migrate(db: Database, versions: Path) -> None:
    """Bring `db` to the newest revision in `versions` (idempotent; one transaction)."""
    from alembic import command

    async with db.write() as conn:
        await conn.run_sync(
            lambda sync: command.upgrade(_config(versions, sync, db.metadata), "head")
        )


async def make_revision(db: Database, versions: Path, message: str, revision_id: str) -> None:
    """Write a new revision: the difference between `db` (migrated to head) and the code's
    schema. A developer's tool: run it on a scratch database, then read and commit the file."""
    from alembic import command

    await migrate(db, versions)
    async with db.write() as conn:
        await conn.run_sync(
            lambda sync: command.revision(
                _config(versions, sync, db.metadata),
                message=message,
                autogenerate=True,
                rev_id=revision_id,
                version_path=str(versions),
            )
        )
