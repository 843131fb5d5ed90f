"""What an infra dir holds about its servers: the settings its last `ensure_up` recorded, the
lock that serialises `agora infra` processes on it, and each server's status as found now."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agora.infra.config import Ports
from agora.infra.errors import InfraError
from agora.infra.processes import say

__all__ = ["LOCK_FILE", "STATE_FILE", "RecordedState", "ServerStatus", "locked", "prepare_dir"]

STATE_FILE = "infra.json"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class ServerStatus:
    """One server as `status` found it: `up` means it answered on `address` just now."""

    name: str
    address: str
    up: bool
    pid: int | None = None
    log: Path | None = None
    detail: str = ""

    @property
    def state(self) -> str:
        """ "up"; "starting" (its process runs but does not answer yet); or "down"."""
        if self.up:
            return "up"
        return "starting" if self.pid is not None else "down"


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the infra dir's lock (an exclusive `flock` on `.lock`), waiting for it if another
    process holds it. Released when the block ends or the process dies."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            say(f"waiting for another `agora infra` working on {root}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RecordedState:
    ports: Ports = field(default_factory=Ports)
    kafka_brokers: int = 1

    @classmethod
    def load(cls, root: Path) -> RecordedState | None:
        try:
            raw = json.loads((root / STATE_FILE).read_text())
            return cls(ports=Ports(**raw["ports"]), kafka_brokers=int(raw["kafka_brokers"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise InfraError(f"{root / STATE_FILE} is damaged ({error}); remove it") from None

    def describe(self) -> str:
        brokers = f"{self.kafka_brokers} Kafka broker{'s' if self.kafka_brokers > 1 else ''}"
        return (
            f"PostgreSQL port {self.ports.postgres}, Redis port {self.ports.redis}, {brokers} "
            f"from port {self.ports.kafka}"
        )

    def save(self, root: Path) -> None:
        tmp = root / f"{STATE_FILE}.tmp"
        tmp.write_text(
            json.dumps({"ports": asdict(self.ports), "kafka_brokers": self.kafka_brokers})
        )
        tmp.replace(root / STATE_FILE)


def prepare_dir(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Servers' data of `agora infra`: never committed.\n*\n")
