"""What the event platform gives one service: its database with outbox and inbox, the relay that
drains the outbox, units of work, and consumer runners for its event handlers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from agora.messaging.envelope import Event, EventRegistry
from agora.messaging.faults import DependencyHealth
from agora.messaging.inbox import add_inbox_table
from agora.messaging.loop import BackgroundLoop
from agora.messaging.metrics import MessagingMetrics
from agora.messaging.migrations import migrate
from agora.messaging.outbox import OutboxRelay, add_outbox_table, outbox_backlog
from agora.messaging.ports import MessageLog
from agora.messaging.runner import (
    BatchPreparation,
    ConsumerRunner,
    EventHandlers,
    Handler,
    RetryPolicy,
)
from agora.messaging.sql import Database, DatabaseTimeouts
from agora.messaging.unit_of_work import UnitOfWork

__all__ = ["ConsumerOptions", "Infrastructure", "Service", "ServicePlatform"]

U = TypeVar("U", bound=UnitOfWork)


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerOptions:
    members: int = 2
    batch_size: int = 200
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)


class ServicePlatform:
    def __init__(
        self,
        name: str,
        database_url: str,
        metadata: MetaData,
        log: MessageLog,
        registry: EventRegistry,
        metrics: MessagingMetrics,
        *,
        consumer_options: ConsumerOptions | None = None,
        relay_batch_size: int = 500,
        database_timeouts: DatabaseTimeouts | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self.registry = registry
        self.metrics = metrics
        # The service's tables and the platform's, in one schema of this instance's own (so that
        # building a service twice, as tests do, never redefines a table).
        schema = MetaData(info=dict(metadata.info))
        for table in metadata.tables.values():
            table.to_metadata(schema)
        self.outbox = add_outbox_table(schema)
        self.inbox = add_inbox_table(schema)
        self.db = Database(database_url, schema, timeouts=database_timeouts)
        self.relay = OutboxRelay(
            name, self.db, self.outbox, log, metrics, batch_size=relay_batch_size
        )
        self.relay_loop = BackgroundLoop(
            f"{name}.outbox-relay", self.relay.step, dependency_up=metrics.dependency_up
        )
        self._consumer_options = consumer_options or ConsumerOptions()
        self.loops: list[BackgroundLoop] = [self.relay_loop]
        self.runners: list[ConsumerRunner] = []

    def unit_of_work(self, kind: type[U] = UnitOfWork) -> U:  # type: ignore[assignment]
        return kind(self.db, self.outbox, source=self.name, on_commit=self.relay_loop.wake)

    def subscribe(
        self,
        handlers: Mapping[type[Event], Handler[U]],
        unit_of_work: Callable[[], U],
        *,
        group: str | None = None,
        prepare: BatchPreparation[U] | None = None,
    ) -> ConsumerRunner:
        """Run `handlers` as consumer group `group` (default: the service's name); see
        `EventHandlers` for `prepare`."""
        options = self._consumer_options
        runner = ConsumerRunner(
            self.log,
            EventHandlers(group or self.name, handlers, unit_of_work, self.inbox, prepare=prepare),
            self.registry,
            self.metrics,
            members=options.members,
            batch_size=options.batch_size,
            retry=options.retry,
        )
        self.runners.append(runner)
        return runner

    def loop_name(self, name: str) -> str:
        return f"{self.name}.{name}"

    def add_loop(
        self, name: str, step: Any, *, idle: float = 1.0, health: DependencyHealth | None = None
    ) -> BackgroundLoop:
        """A background loop of the service's (see `BackgroundLoop`, also for `health`)."""
        loop = BackgroundLoop(
            self.loop_name(name),
            step,
            idle=idle,
            dependency_up=self.metrics.dependency_up,
            health=health,
        )
        self.loops.append(loop)
        return loop

    async def start(self) -> None:
        """Connect what needs a connection before the loops run (the relay's wake-ups)."""
        await self.relay.start(self.relay_loop.wake)

    async def outbox_backlog(self) -> int:
        async with self.db.read() as conn:
            return await outbox_backlog(conn, self.outbox)


@dataclasses.dataclass(frozen=True, slots=True)
class Infrastructure:
    """What a runtime hands every service's bootstrap: the log, where databases live, metrics."""

    log: MessageLog
    registry: EventRegistry
    metrics: MessagingMetrics
    metrics_registry: CollectorRegistry
    database_url: Callable[[str], str]
    consumer_options: ConsumerOptions = dataclasses.field(default_factory=ConsumerOptions)
    database_timeouts: DatabaseTimeouts = dataclasses.field(default_factory=DatabaseTimeouts)

    def platform(self, name: str, metadata: MetaData) -> ServicePlatform:
        return ServicePlatform(
            name,
            self.database_url(name),
            metadata,
            self.log,
            self.registry,
            self.metrics,
            consumer_options=self.consumer_options,
            database_timeouts=self.database_timeouts,
        )


class Service:
    """Base of a service's composition root: the platform built for it from `infrastructure`
    and its tables, and what a runtime calls. Subclasses subscribe handlers, add loops and set
    `router` (the service's HTTP API) in their constructor."""

    name: ClassVar[str]
    migrations: ClassVar[Path]  # the service's Alembic revisions
    router: Any

    def __init__(self, infrastructure: Infrastructure, metadata: MetaData) -> None:
        self.platform = infrastructure.platform(self.name, metadata)

    def unit_of_work(self) -> UnitOfWork:
        return self.platform.unit_of_work()

    async def migrate(self) -> None:
        """Bring the service's database to the newest schema (idempotent)."""
        await migrate(self.platform.db, self.migrations)

    async def start(self) -> None:
        """Called once the schema is current, before any loop or consumer runs."""

    def drain(self) -> None:
        """Called when the process stops taking requests: requests held open waiting for
        something (a long poll) answer now with what they have."""

    async def refresh_metrics(self) -> None:
        """Bring gauges up to date before a scrape."""
