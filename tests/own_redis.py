"""A Redis of a test's own, to stop, flush or pause and start again: the shared test servers are
never stopped (other runs use them)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.infra.ports import port_open
from agora.infra.redis import RedisServer
from agora.runtime.supervisor import LOOPBACK, free_port
from harness import eventually


class OwnRedis:
    """A Redis in `root` on a free port. It saves nothing: `stop` (or `kill`, a `kill -9`)
    then `start` is a restart that comes back empty, as the production Redis of `agora infra`
    does."""

    def __init__(self, root: Path) -> None:
        self.server = RedisServer(root, free_port(LOOPBACK))

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.server.port}/0"

    def start(self) -> None:
        self.server.ensure_up()

    def kill(self) -> None:
        pid = self.server.pid()
        assert pid is not None, "the test's Redis is not running"
        os.kill(pid, signal.SIGKILL)
        # Gone once its port is closed too: a dying process's command line (which `pid` reads)
        # is empty before its sockets are closed.
        eventually(
            lambda: self.server.pid() is None and not port_open(self.server.port),
            timeout=30,
            interval=0.05,
            what="the killed Redis to be gone",
        )

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    root = Path(tempfile.mkdtemp(prefix="agora-own-redis-"))
    redis = OwnRedis(root)
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
