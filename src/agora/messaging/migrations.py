"""Schema migrations (Alembic), run on SQLite and PostgreSQL alike.

A service database holds two histories. The platform's (`messaging/alembic/versions/`, branch
`platform`) owns the tables every service has: the outbox and the inbox. The service's own (its
`migrations/` folder) owns the rest, and its first revision `depends_on` the platform's first,
so that a change to the platform's tables is one revision that reaches every service. The
environment and the revision template are shared (`messaging/alembic/`). The target schema is
the service's tables plus the outbox and inbox (`ServicePlatform.db.metadata`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData

from agora.messaging.sql import Database, without_statement_timeout

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["PLATFORM_VERSIONS", "make_revision", "managed_names", "migrate"]

ENVIRONMENT = Path(__file__).parent / "alembic"
PLATFORM_VERSIONS = ENVIRONMENT / "versions"


def managed_names(metadata: MetaData) -> Callable[[str | None, str, Any], bool]:
    """Alembic's `include_name` filter: everything but what `metadata.info["unmanaged"]` names
    (by prefix): objects a migration creates by hand, such as full-text indexes."""
    unmanaged = tuple(metadata.info.get("unmanaged", ()))

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (name and unmanaged and name.startswith(unmanaged))

    return include


def _config(histories: Sequence[Path], connection: Any, metadata: MetaData) -> Config:
    from alembic.config import Config  # imported when used: Alembic is slow to import

    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in histories))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    return config


async def migrate(
    db: Database, versions: Path, *, platform: Sequence[Path] = (PLATFORM_VERSIONS,)
) -> None:
    """Bring `db` to the newest revision of both histories: the platform's (in the folders
    `platform`) and the service's (`versions`). Idempotent; one transaction."""
    from alembic import command

    histories = [*platform, versions]
    async with db.write() as conn:
        await without_statement_timeout(conn)
        await conn.run_sync(
            lambda sync: command.upgrade(_config(histories, sync, db.metadata), "heads")
        )


async def make_revision(
    db: Database, versions: Path, message: str, revision_id: str, *, platform: bool = False
) -> None:
    """Write a new revision: the difference between `db` (migrated to the heads) and the code's
    schema, on top of the service's history (`versions`), or of the platform's if `platform`.
    A developer's tool: run it on a scratch database, then read and commit the file; a platform
    revision's id starts with `platform_`, as ids must be unique across both histories."""
    from alembic import command
    from alembic.script import ScriptDirectory

    await migrate(db, versions)
    target = PLATFORM_VERSIONS if platform else versions
    histories = [PLATFORM_VERSIONS, versions]

    def revise(sync: Any) -> None:
        config = _config(histories, sync, db.metadata)
        # While no platform revision follows the one the services depend on, the platform's
        # head is no head of the whole graph; its branch label names it all the same.
        head = "platform@head"
        if not platform:
            (head,) = (
                script.revision
                for script in ScriptDirectory.from_config(config).get_revisions("heads")
                if script is not None and Path(script.path).parent == versions
            )
        command.revision(
            config,
            message=message,
            autogenerate=True,
            rev_id=revision_id,
            head=head,
            version_path=str(target),
        )

    async with db.write() as conn:
        await conn.run_sync(revise)
