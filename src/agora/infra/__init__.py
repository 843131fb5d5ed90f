"""Real PostgreSQL, Redis and Apache Kafka servers on 127.0.0.1, started by the project itself.

`ensure_up(dir)` installs what is missing (Debian packages, the Kafka jars from Maven), starts
whatever is not running and returns the addresses as `InfraSettings`; `down(dir)` stops what it
started; `status(dir)` reports each server. Guarantees:

* Every server listens on 127.0.0.1 only; every file they write is under one folder, the infra
  dir (`--dir`, env `AGORA_INFRA_DIR`, default `./.agora-infra`), except the Kafka jars, which are
  cached per version under `~/.cache/agora` (env `AGORA_KAFKA_CACHE`).
* `ensure_up` is idempotent and safe to call from several processes at once: a file lock on the
  infra dir serialises them, a server already running is left alone, and it returns only once
  every server answers real requests (a query, a PING, a Kafka metadata request naming every
  broker). It raises `InfraError` with the tail of the server's log when one cannot start.
* `down` stops only the servers recorded in the infra dir, and is a no-op when none runs.
* Progress goes to stderr; nothing here writes to stdout.

`postgres`, `redis` and `kafka` each manage one server; `servers` drives all three. What they
share lives by concern: `config` (ports, addresses, the infra dir), `processes` (running and
stopping them, progress), `ports` (claiming TCP ports), `packages` (Debian packages) and
`state` (what the infra dir records, its lock). This package re-exports the public surface.
"""

from agora.infra.config import DEFAULT_DIR, HOST, InfraSettings, Ports, infra_dir
from agora.infra.errors import InfraError
from agora.infra.ports import port_bindable, port_open
from agora.infra.servers import (
    down,
    ensure_databases,
    ensure_databases_async,
    ensure_up,
    ensure_up_async,
    settings,
    status,
)
from agora.infra.state import ServerStatus

__all__ = [
    "DEFAULT_DIR",
    "HOST",
    "InfraError",
    "InfraSettings",
    "Ports",
    "ServerStatus",
    "down",
    "ensure_databases",
    "ensure_databases_async",
    "ensure_up",
    "ensure_up_async",
    "infra_dir",
    "port_bindable",
    "port_open",
    "settings",
    "status",
]
