"""Redis for `agora infra`: Debian's `redis-server`, daemonised on 127.0.0.1, without persistence.

Its PID file and log live in `DIR/redis`; nothing is saved to disk (`--save ""`,
`--appendonly no`), so a restart starts empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis as redis_client  # the client library; this module is agora.infra.redis

from agora.infra.config import HOST
from agora.infra.errors import InfraError
from agora.infra.ports import claim_port
from agora.infra.processes import (
    Deadline,
    log_tail,
    pid_alive,
    read_pid,
    run_logged,
    say,
    terminate,
)
from agora.infra.state import ServerStatus

PACKAGE = "redis-server"
START_TIMEOUT = 30.0
_NEEDLE = "redis-server"


def find_server() -> str | None:
    """The `redis-server` binary on PATH (or Debian's /usr/bin one), else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    debian = Path("/usr/bin/redis-server")
    return str(debian) if debian.exists() else None


class RedisServer:
    """One Redis server with its files under `root`, listening on 127.0.0.1:`port`."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.pid_file = root / "redis.pid"
        self.log = root / "redis.log"
        self.setup_log = root / "setup.log"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def missing_packages(self) -> list[str]:
        """["redis-server"] if the server binary is not installed, else []."""
        return [] if find_server() else [PACKAGE]

    def pid(self) -> int | None:
        """The server's PID if it runs, else None."""
        pid = read_pid(self.pid_file)
        if pid is not None and pid_alive(pid, _NEEDLE):
            return pid
        return None

    def ping(self) -> bool:
        """Whether the server answers PING on 127.0.0.1:`port`."""
        client = redis_client.Redis(
            host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=2
        )
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            return False
        finally:
            client.close()

    def status(self) -> ServerStatus:
        pid = self.pid()
        return ServerStatus("redis", self.address, pid is not None and self.ping(), pid, self.log)

    def ensure_up(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server unless it runs; return once it answers PING. Raises `InfraError`
        (with the log's tail) if it does not within `timeout` seconds."""
        server = find_server()
        if server is None:
            raise InfraError("Redis is not installed (Debian package `redis-server`)")
        deadline = Deadline(timeout)
        if self.pid() is not None:
            say(f"Redis already running on {self.address}")
        else:
            claim_port(self.port, server="Redis", hint="--redis-port / AGORA_INFRA_REDIS_PORT")
            self.root.mkdir(parents=True, exist_ok=True)
            self.pid_file.unlink(missing_ok=True)
            say(f"starting Redis on {self.address} (log {self.log})")
            run_logged(
                [
                    server,
                    "--daemonize",
                    "yes",
                    "--bind",
                    HOST,
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--pidfile",
                    str(self.pid_file),
                    "--logfile",
                    str(self.log),
                ],
                log=self.setup_log,
                what="redis-server",
                timeout=60,
            )
        try:
            deadline.poll(
                self.ping,
                what=f"waiting for Redis on {self.address}",
                failed=self._failed,
            )
        except InfraError as error:
            raise InfraError(f"{error}; log {self.log}:\n{log_tail(self.log)}") from None

    def _failed(self) -> str | None:
        if self.pid_file.exists() and self.pid() is None:
            return "the server exited"
        return None

    def stop(self) -> bool:
        """Stop the server (SHUTDOWN NOSAVE, then SIGTERM if need be) if it runs; return
        whether it ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        say(f"stopping Redis on {self.address}")
        client = redis_client.Redis(host=HOST, port=self.port, socket_timeout=5)
        try:
            client.shutdown(nosave=True)
        except redis_client.RedisError as error:
            say(f"Redis SHUTDOWN failed ({error}); sending SIGTERM")
        finally:
            client.close()
        terminate(pid, needle=_NEEDLE, what="Redis", grace=15)
        self.pid_file.unlink(missing_ok=True)
        return True
