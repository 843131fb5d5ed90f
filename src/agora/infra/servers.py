"""The calls that drive all three servers of an infra dir: up, status, down, databases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from agora.infra.config import HOST, InfraSettings, Ports, env_int, infra_dir
from agora.infra.errors import InfraError
from agora.infra.packages import apt_install
from agora.infra.ports import reserve_ports
from agora.infra.processes import say
from agora.infra.state import RecordedState, ServerStatus, locked, prepare_dir

__all__ = [
    "down",
    "ensure_databases",
    "ensure_databases_async",
    "ensure_up",
    "ensure_up_async",
    "settings",
    "status",
]


def settings(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
) -> InfraSettings:
    """The addresses of the servers of an infra dir, as recorded by its last `ensure_up` (else
    the defaults), without starting or checking anything."""
    root = infra_dir(dir)
    state = RecordedState.load(root) or RecordedState(
        Ports.from_env(), env_int("AGORA_INFRA_KAFKA_BROKERS", 1)
    )
    return InfraSettings.of(root, ports or state.ports, kafka_brokers or state.kafka_brokers)


def ensure_up(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
    databases: Iterable[str] = (),
) -> InfraSettings:
    """Make PostgreSQL, Redis and Kafka of the infra dir run and answer, and return where.

    `ports` and `kafka_brokers` (1, or 3 for a three-node KRaft quorum with replication factor
    3), when not given, keep those of the servers already running in the dir; with none
    running they default to `Ports.from_env()` and `$AGORA_INFRA_KAFKA_BROKERS` or 1. Each
    database named in `databases` exists when this returns. Installs missing Debian packages
    and fetches the Kafka jars on first use. Idempotent; concurrent callers are serialised by a
    file lock. Raises `InfraError` (with the server's log tail) if a server cannot be made to
    answer, and if servers of the dir already run with ports or a broker count other than the
    ones given.
    """
    from agora.infra import faketime, nginx
    from agora.infra.browser import Chromium
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer, ensure_databases_at
    from agora.infra.redis import RedisServer

    root = infra_dir(dir)
    prepare_dir(root)
    with locked(root):
        previous = RecordedState.load(root)
        running = [] if previous is None else [s.name for s in _statuses(root, previous) if s.up]
        if previous is not None and running:
            wanted_ports = ports or previous.ports
            brokers = kafka_brokers or previous.kafka_brokers
        else:
            wanted_ports = ports or Ports.from_env()
            brokers = kafka_brokers or env_int("AGORA_INFRA_KAFKA_BROKERS", 1)
        if brokers not in (1, 3):
            raise InfraError(f"--kafka-brokers must be 1 or 3, got {brokers}")
        wanted_ports.validate(brokers)
        wanted = RecordedState(wanted_ports, brokers)
        if previous is not None and running and previous != wanted:
            raise InfraError(
                f"{', '.join(running)} of {root} already run with other settings "
                f"({previous.describe()}); stop them first: agora infra down --dir {root}"
            )
        wanted.save(root)
        reserve_ports(wanted_ports.all(brokers))
        postgres = PostgresServer(root / "postgres", wanted_ports.postgres)
        redis = RedisServer(root / "redis", wanted_ports.redis)
        kafka = KafkaCluster(root / "kafka", wanted_ports, brokers)
        logs = root / "logs"

        missing = [
            *postgres.missing_packages(),
            *redis.missing_packages(),
            *kafka.missing_packages(),
            *Chromium().missing_packages(),  # for the browser tests; started by them
            *faketime.missing_packages(),  # for the fault tests of a clock off by minutes
            *nginx.missing_packages(),  # the entry of `agora up` on servers; started by it
        ]
        apt_install(missing, log=logs / "apt.log")
        kafka.prepare(log=logs / "maven.log")  # the jars, storage formatted once per node

        kafka.start()  # the slowest to boot: PostgreSQL and Redis start meanwhile
        postgres.ensure_up()
        redis.ensure_up()
        kafka.wait_ready()
        result = InfraSettings.of(root, wanted_ports, brokers)
        names = list(databases)
        if names:
            ensure_databases_at(result.database_url_template, names)
    say(
        f"ready: PostgreSQL {HOST}:{wanted_ports.postgres}, Redis {HOST}:{wanted_ports.redis}, "
        f"Kafka {result.kafka_bootstrap} (data in {root})"
    )
    return result


async def ensure_up_async(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
    databases: Iterable[str] = (),
) -> InfraSettings:
    """`ensure_up` on a worker thread, for async callers (same guarantees)."""
    names = list(databases)
    return await asyncio.to_thread(
        ensure_up, dir, ports=ports, kafka_brokers=kafka_brokers, databases=names
    )


def _statuses(root: Path, state: RecordedState) -> list[ServerStatus]:
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer
    from agora.infra.redis import RedisServer

    return [
        PostgresServer(root / "postgres", state.ports.postgres).status(),
        RedisServer(root / "redis", state.ports.redis).status(),
        *KafkaCluster(root / "kafka", state.ports, state.kafka_brokers).status(),
    ]


def status(dir: Path | str | None = None) -> list[ServerStatus]:
    """Each server of the infra dir (PostgreSQL, Redis, every Kafka broker), up or down, on the
    ports its last `ensure_up` recorded (the defaults if it never ran), then the browser the
    browser tests launch (Chromium, "up" when installed). Starts nothing."""
    from agora.infra.browser import Chromium

    root = infra_dir(dir)
    servers = _statuses(root, RecordedState.load(root) or RecordedState(Ports.from_env()))
    return [*servers, Chromium().status()]


def down(dir: Path | str | None = None) -> list[str]:
    """Stop every server of the infra dir that runs (Kafka first, then Redis, then PostgreSQL)
    and return the names of those stopped. Data stays on disk; nothing running is fine.
    Raises `InfraError` only if a server refuses to stop."""
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer
    from agora.infra.redis import RedisServer

    root = infra_dir(dir)
    if not root.is_dir():
        return []
    with locked(root):
        state = RecordedState.load(root) or RecordedState(Ports.from_env())
        stopped = KafkaCluster(root / "kafka", state.ports, state.kafka_brokers).stop()
        if RedisServer(root / "redis", state.ports.redis).stop():
            stopped.append("redis")
        if PostgresServer(root / "postgres", state.ports.postgres).stop():
            stopped.append("postgres")
    return stopped


def ensure_databases(names: Iterable[str], *, template: str | None = None) -> None:
    """Create each named database (owned by `agora`) unless it exists; safe when another
    process creates the same one at the same time.

    `template` is a URL with a `{service}` placeholder, default `$AGORA_DATABASE_URL_TEMPLATE`,
    else that of the default infra dir. Names: letters, digits, `_` and `-`.
    """
    from agora.infra.postgres import ensure_databases_at

    ensure_databases_at(template or _default_template(), list(names))


async def ensure_databases_async(names: Iterable[str], *, template: str | None = None) -> None:
    """`ensure_databases` for async callers (same guarantees)."""
    from agora.infra.postgres import create_databases

    await create_databases(template or _default_template(), list(names))


def _default_template() -> str:
    return os.environ.get("AGORA_DATABASE_URL_TEMPLATE") or settings().database_url_template
