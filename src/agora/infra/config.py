"""Where the servers of an infra dir listen, from arguments and `AGORA_INFRA_*` variables
(nothing here starts or checks a server)."""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path

from agora.infra.errors import InfraError

__all__ = ["DEFAULT_DIR", "ENV_DIR", "HOST", "InfraSettings", "Ports", "env_int", "infra_dir"]

HOST = "127.0.0.1"
"""The only address any server listens on."""

DEFAULT_DIR = Path(".agora-infra")
ENV_DIR = "AGORA_INFRA_DIR"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InfraError(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1. Kafka broker `i` (0-based) listens on `kafka + 2*i` and its
    controller on the port after that: 59092/59093 for one broker; 59092, 59094, 59096 (and
    controllers 59093, 59095, 59097) for three."""

    postgres: int = 55432
    redis: int = 56379
    kafka: int = 59092

    @classmethod
    def from_env(cls) -> Ports:
        """The defaults, overridden by `AGORA_INFRA_POSTGRES_PORT`, `AGORA_INFRA_REDIS_PORT`
        and `AGORA_INFRA_KAFKA_PORT`."""
        return cls(
            postgres=env_int("AGORA_INFRA_POSTGRES_PORT", cls.postgres),
            redis=env_int("AGORA_INFRA_REDIS_PORT", cls.redis),
            kafka=env_int("AGORA_INFRA_KAFKA_PORT", cls.kafka),
        )

    def kafka_broker(self, index: int) -> int:
        """Client port of broker `index` (0-based)."""
        return self.kafka + 2 * index

    def kafka_controller(self, index: int) -> int:
        """Controller (KRaft quorum) port of broker `index` (0-based)."""
        return self.kafka + 2 * index + 1

    def all(self, kafka_brokers: int) -> list[int]:
        """Every port the servers use with `kafka_brokers` brokers."""
        used = [self.postgres, self.redis]
        for index in range(kafka_brokers):
            used += [self.kafka_broker(index), self.kafka_controller(index)]
        return used

    def validate(self, kafka_brokers: int) -> None:
        """Raise `InfraError` unless every port is in range and no two servers share one."""
        used = self.all(kafka_brokers)
        if any(not 1024 <= port <= 65535 for port in used):
            raise InfraError(f"ports must be within 1024-65535, got {sorted(used)}")
        if len(set(used)) != len(used):
            raise InfraError(f"two servers would share a port: {sorted(used)}")


@dataclass(frozen=True)
class InfraSettings:
    """Where the servers of one infra dir listen. `env()` gives the `AGORA_*` variables that
    configure Agora for them; `exports()` the same as shell lines for `eval`."""

    dir: Path
    ports: Ports
    kafka_brokers: int
    database_url_template: str
    kafka_bootstrap: str
    redis_url: str

    @classmethod
    def of(cls, dir: Path, ports: Ports, kafka_brokers: int) -> InfraSettings:
        """The settings for servers of `dir` on `ports` (nothing is started or checked)."""
        brokers = ",".join(f"{HOST}:{ports.kafka_broker(i)}" for i in range(kafka_brokers))
        return cls(
            dir=dir,
            ports=ports,
            kafka_brokers=kafka_brokers,
            database_url_template=(
                f"postgresql+asyncpg://agora@{HOST}:{ports.postgres}/{{service}}"
            ),
            kafka_bootstrap=brokers,
            redis_url=f"redis://{HOST}:{ports.redis}/0",
        )

    def database_url(self, service: str) -> str:
        """The SQLAlchemy URL of `service`'s own database (see `ensure_databases`)."""
        return self.database_url_template.replace("{service}", service)

    def env(self) -> dict[str, str]:
        """`AGORA_DATABASE_URL_TEMPLATE`, `AGORA_KAFKA_BOOTSTRAP`, `AGORA_REDIS_URL` and
        `AGORA_INFRA_DIR`."""
        return {
            "AGORA_DATABASE_URL_TEMPLATE": self.database_url_template,
            "AGORA_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "AGORA_REDIS_URL": self.redis_url,
            ENV_DIR: str(self.dir),
        }

    def isolated_env(self, label: str) -> dict[str, str]:
        """`env()` with databases and Kafka topics of a run of its own (named `label` and a
        random suffix): runs sharing these servers (tests, benchmarks) never meet."""
        run = f"{label}{uuid.uuid4().hex[:10]}"
        return {
            **self.env(),
            "AGORA_DATABASE_URL_TEMPLATE": self.database_url_template.replace(
                "{service}", f"{{service}}_{run}"
            ),
            "AGORA_KAFKA_NAMESPACE": f"{run}.",
        }

    def exports(self) -> str:
        """`export NAME=VALUE` lines, shell-quoted, one per variable of `env()`."""
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())


def infra_dir(dir: Path | str | None = None) -> Path:
    """The infra dir as an absolute path, links resolved: `dir`, else `$AGORA_INFRA_DIR`, else
    `./.agora-infra`."""
    chosen = Path(dir) if dir is not None else Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)
    # Resolved, because a running server is recognised by its files' paths in its command
    # line: reached through a link (a worktree sharing another checkout's servers), the same
    # Kafka node would look like a stranger holding its port.
    return chosen.expanduser().resolve()
