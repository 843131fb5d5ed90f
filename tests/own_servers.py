"""Servers of a test's own, for tests that stop, restart or flush them.

The shared servers of `agora infra` serve every other test running at the same time: a test
that takes a server away starts its own, on a free port in a folder of its own, and points only
its own app at it. A server that cannot start fails the test (`InfraError`), never skips it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agora.infra import HOST
from agora.infra.postgres import PostgresServer, create_databases
from agora.infra.redis import RedisServer
from agora.runtime.supervisor import LOOPBACK, free_port


@contextlib.contextmanager
def own_redis() -> Iterator[RedisServer]:
    """A Redis on a free port, stopped (and its folder removed) afterwards."""
    root = Path(tempfile.mkdtemp(prefix="agora-own-redis-"))
    server = RedisServer(root, free_port(LOOPBACK))
    try:
        server.ensure_up()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def redis_url(server: RedisServer) -> str:
    return f"redis://{HOST}:{server.port}/0"


@contextlib.contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on a free port, stopped (and its folder removed) afterwards. Its
    folder is under /tmp, open to every user: as root the server runs as `postgres`, which must
    be able to enter it (pytest's own tmp folders are closed to other users)."""
    root = Path(tempfile.mkdtemp(prefix="agora-own-postgres-"))
    root.chmod(0o755)
    server = PostgresServer(root / "postgres", free_port(LOOPBACK))
    try:
        server.ensure_up()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def database_url_template(server: PostgresServer) -> str:
    return f"postgresql+asyncpg://agora@{HOST}:{server.port}/{{service}}"


async def create_service_databases(server: PostgresServer, names: list[str]) -> None:
    await create_databases(database_url_template(server), names)
