"""A PostgreSQL of a test's own, to kill and start again: the shared test servers are never
stopped (other runs use them)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.infra.postgres import ROLE, PostgresServer
from agora.runtime.supervisor import LOOPBACK, free_port
from harness import eventually


class OwnPostgres:
    """A cluster in `root` on a free port: `kill` is `kill -9` of the postmaster (no shutdown,
    no checkpoint), `start` brings it back (crash recovery) on the same port; `restart` is the
    operator's fast restart (sessions ended, a checkpoint, up again)."""

    def __init__(self, root: Path) -> None:
        self.server = PostgresServer(root, free_port(LOOPBACK))
        self.killed_at: float | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def url_template(self) -> str:
        return f"postgresql+asyncpg://{ROLE}@{LOOPBACK}:{self.port}/{{service}}"

    def url(self, database: str = ROLE) -> str:
        return self.url_template().replace("{service}", database)

    def start(self) -> None:
        self.server.ensure_up()
        self.killed_at = None

    def kill(self) -> None:
        pid = self.server.pid()
        assert pid is not None, "the test's PostgreSQL is not running"
        os.kill(pid, signal.SIGKILL)
        self.killed_at = time.monotonic()
        # Gone once reaped: until then its pid file names a live process and a new postmaster
        # refuses to start. Its backends exit on their own when they see the postmaster gone.
        eventually(
            lambda: not Path(f"/proc/{pid}").exists() and self.server.pid() is None,
            timeout=30,
            interval=0.05,
            what="the killed postmaster to be gone",
        )

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's tmp_path: as root the server runs as user postgres, who must be able
    # to enter every folder above its data.
    root = Path(tempfile.mkdtemp(prefix="agora-own-postgres-"))
    root.chmod(0o755)
    postgres = OwnPostgres(root)
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
