"""The consumer runner: fetch a batch, apply it in one transaction with the inbox, and only then
commit the offsets. A failing batch is retried one event at a time with exponential backoff; an
event that keeps failing, or can never be read, goes to `<topic>.dlt` with the error.

A transient fault (`agora.messaging.faults`: the database refused the connection, a lock timed
out, the broker is away) is no verdict on the event. The member stops where it is, keeps the
batch and its offsets uncommitted, reports the group unhealthy, and tries the same batch again
(capped exponential backoff, full jitter) until the dependency answers; no attempt is counted
and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Table

from agora.messaging.envelope import DecodeError, Envelope, Event, EventRegistry, utcnow
from agora.messaging.faults import (
    LOG,
    Backoff,
    DependencyHealth,
    PermanentError,
    transient_fault,
)
from agora.messaging.inbox import claim_inbox
from agora.messaging.metrics import MessagingMetrics
from agora.messaging.ports import ConsumedRecord, Consumer, MessageLog, Record, TopicPartition
from agora.messaging.unit_of_work import UnitOfWork

__all__ = [
    "ConsumerRunner",
    "EventHandlers",
    "PermanentError",
    "RetryPolicy",
    "dead_letter_topic",
]

logger = logging.getLogger(__name__)

U = TypeVar("U", bound=UnitOfWork)
Handler = Callable[[Any, U], Awaitable[None]]
BatchPreparation = Callable[[Sequence[Event], U], Awaitable[None]]


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlt"


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """An event gets `attempts` tries before its dead letter, with exponential backoff between
    them. A transient fault (`agora.messaging.faults.transient_fault`) counts no attempt: it
    comes from a dependency, not from the event, and the same event succeeds once it answers;
    it is tried again after `backoff`'s waits, without end."""

    attempts: int = 5
    first_delay: float = 0.05
    max_delay: float = 5.0

    def is_transient(self, error: Exception) -> bool:
        return transient_fault(error) is not None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.first_delay * 2 ** min(attempt - 1, 64)))

    @property
    def backoff(self) -> Backoff:
        """The waits between tries while a dependency is down."""
        return Backoff(first=self.first_delay, cap=self.max_delay)


class EventHandlers(Generic[U]):
    """One consumer group's table of event type → handler.

    `apply` runs a batch in one unit of work: the inbox claim, then each new event's handler.
    Events already in the inbox are skipped, so redelivery changes nothing.

    `prepare`, if given, sees the batch's new events first, in the same unit of work: the place
    to take every lock the batch will need at once, in a fixed order, so that batches applied
    concurrently (replicas, members) cannot deadlock.
    """

    def __init__(
        self,
        group: str,
        handlers: Mapping[type[Event], Handler[U]],
        unit_of_work: Callable[[], U],
        inbox: Table,
        *,
        prepare: BatchPreparation[U] | None = None,
    ) -> None:
        self.group = group
        self._handlers = dict(handlers)
        self._unit_of_work = unit_of_work
        self._inbox = inbox
        self._prepare = prepare

    @property
    def topics(self) -> list[str]:
        return sorted({event.topic for event in self._handlers})

    def wants(self, event: Event) -> bool:
        return type(event) in self._handlers

    async def apply(self, batch: Sequence[tuple[Envelope, Event]]) -> None:
        async with self._unit_of_work() as uow:
            fresh = await claim_inbox(
                uow.conn, self._inbox, self.group, [envelope.id for envelope, _ in batch]
            )
            if self._prepare is not None and fresh:
                await self._prepare(
                    [event for envelope, event in batch if envelope.id in fresh], uow
                )
            for envelope, event in batch:
                if envelope.id in fresh:
                    fresh.discard(envelope.id)  # a duplicate within the batch is applied once
                    uow.cause = envelope
                    await self._handlers[type(event)](event, uow)
            uow.cause = None


class _Interrupted(Exception):
    """stop() came while a batch waited for a dependency: the member leaves without committing
    it."""


@dataclasses.dataclass(slots=True)
class _Item:
    record: ConsumedRecord
    envelope: Envelope
    event: Event


class ConsumerRunner:
    def __init__(
        self,
        log: MessageLog,
        handlers: EventHandlers[Any],
        registry: EventRegistry,
        metrics: MessagingMetrics,
        *,
        members: int = 1,
        batch_size: int = 200,
        retry: RetryPolicy | None = None,
        fetch_timeout: float = 0.5,
    ) -> None:
        self.group = handlers.group
        self._log = log
        self._handlers = handlers
        self._registry = registry
        self._metrics = metrics
        self._members = members
        self._batch_size = batch_size
        self._retry = retry or RetryPolicy()
        self._fetch_timeout = fetch_timeout
        self._stopping = False
        self._stopped = asyncio.Event()
        self._consumers: list[Consumer] = []
        self._commit_outages: set[str] = set()  # dependencies a failed commit took down
        self.health = DependencyHealth(f"consumer {self.group}", metrics.dependency_up)

    def stop(self) -> None:
        """Members finish the batch in hand, commit it, and leave the group."""
        self._stopping = True
        self._stopped.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._member() for _ in range(self._members)))

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if stop() comes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _member(self) -> None:
        """One member for the runner's lifetime. If its consumer fails (a broker restart, a
        rebalance gone wrong), it leaves the group and joins again after a pause: records not
        committed are delivered again, and the inbox absorbs what was already applied."""
        failures = 0
        failed_on = LOG  # the dependency whose fault made the member leave last
        failed_committing = False  # whether it left because offsets could not be committed

        def committed() -> None:
            # Any member's commit that lands shows the log takes writes again: what the
            # group's members left for when theirs failed is back.
            nonlocal failures
            failures = 0
            while self._commit_outages:
                self.health.up(self._commit_outages.pop())

        while not self._stopping:
            consumer = self._log.consumer(self.group, self._handlers.topics)
            self._consumers.append(consumer)
            committer = _Committer(consumer, on_committed=committed)
            try:
                while not self._stopping:
                    committer.raise_failure()
                    records = await consumer.fetch(self._batch_size, self._fetch_timeout)
                    # A fetch shows the log answers; not that offsets can be committed again
                    # (the embedded log's file reads fine on a full disk): after a failed
                    # commit, the next commit that lands says so.
                    if failures and not failed_committing:
                        failures = 0
                        self.health.up(failed_on)
                    if records:
                        with self._metrics.batch_seconds.labels(self.group).time():
                            await self._process(records)
                        committer.add(_next_offsets(records))
                await committer.flush()
            except _Interrupted:
                logger.info("%s: a member stopped while a dependency was down", self.group)
            except Exception as error:
                dependency = transient_fault(error)
                failed_committing = committer.failed
                failures += 1
                if dependency is None:
                    logger.exception("%s: a member failed; it rejoins the group", self.group)
                    await self._pause(self._retry.max_delay)
                else:
                    failed_on = dependency
                    if failed_committing:
                        self._commit_outages.add(dependency)
                    self.health.down(dependency, error)
                    await self._pause(self._retry.backoff.delay(failures))
            finally:
                await committer.abandon()
                self._consumers.remove(consumer)
                try:
                    await consumer.close()
                except Exception:
                    logger.exception("%s: closing a member's consumer failed", self.group)

    async def report_lag(self) -> int:
        """Set the lag gauge of each topic from the members' committed offsets; returns the
        total (records of this group's topics not yet applied and committed)."""
        by_topic: dict[str, int] = dict.fromkeys(self._handlers.topics, 0)
        for consumer in list(self._consumers):
            for tp, count in (await consumer.lag()).items():
                by_topic[tp.topic] += count
        for topic, count in by_topic.items():
            self._metrics.consumer_lag.labels(self.group, topic).set(count)
        return sum(by_topic.values())

    async def _process(self, records: Sequence[ConsumedRecord]) -> None:
        items: list[_Item] = []
        now = utcnow()
        ahead: dict[str, float] = {}  # by source: the latest of the batch's occurred_at
        for record in records:
            replay_for = record.header("x-replay-for")
            if replay_for is not None and replay_for.decode() != self.group:
                continue  # a dead letter replayed for another group
            try:
                envelope = Envelope.from_bytes(record.value)
                event = self._registry.parse(envelope)
            except DecodeError as error:
                await self._dead_letter(record, error, attempts=0)
                continue
            if envelope.occurred_at.tzinfo is not None:  # a naive time tells no clock's offset
                seconds = (envelope.occurred_at - now).total_seconds()
                ahead[envelope.source] = max(seconds, ahead.get(envelope.source, seconds))
            if self._handlers.wants(event):
                items.append(_Item(record, envelope, event))
        for source, seconds in ahead.items():
            self._metrics.peer_clocks.observe(source, seconds)
        if not items:
            return
        if len(items) > 1:
            try:
                await self._apply(items)
            except _Interrupted:
                raise
            except Exception:
                logger.warning(
                    "%s: batch of %d failed, retrying one by one",
                    self.group,
                    len(items),
                    exc_info=True,
                )
            else:
                self._metrics.events_handled.labels(self.group).inc(len(items))
                return
        for item in items:
            await self._apply_with_retry(item)

    async def _apply(self, items: Sequence[_Item]) -> None:
        """Apply `items` in one unit of work, waiting out any transient fault: returns once they
        are applied, raises the handler's own error (or `_Interrupted` if stop() came while a
        dependency was down: the batch's offsets stay uncommitted, the next owner applies it)."""
        failures = 0
        while True:
            try:
                await self._handlers.apply([(item.envelope, item.event) for item in items])
            except Exception as failure:
                dependency = transient_fault(failure)
                if dependency is None:
                    raise
                failures += 1
                self.health.down(dependency, failure)
                if self._stopping:
                    raise _Interrupted from failure
                self._metrics.handler_retries.labels(self.group).inc()
                await self._pause(self._retry.backoff.delay(failures))
                if self._stopping:
                    raise _Interrupted from failure
            else:
                if failures:
                    self.health.up()
                return

    async def _apply_with_retry(self, item: _Item) -> None:
        error: Exception | None = None
        attempt = 0
        while attempt < self._retry.attempts:
            try:
                await self._apply([item])
            except _Interrupted:
                raise
            except (PermanentError, DecodeError) as permanent:
                error = permanent
                attempt += 1
                break
            except Exception as failure:
                error = failure
                attempt += 1
                logger.warning(
                    "%s: %s %s failed (attempt %d of %d): %r",
                    self.group,
                    item.envelope.type,
                    item.envelope.id,
                    attempt,
                    self._retry.attempts,
                    failure,
                )
                if attempt < self._retry.attempts:
                    self._metrics.handler_retries.labels(self.group).inc()
                    await asyncio.sleep(self._retry.delay(attempt))
            else:
                self._metrics.events_handled.labels(self.group).inc()
                return
        assert error is not None
        await self._dead_letter(item.record, error, attempts=attempt)

    async def _dead_letter(self, record: ConsumedRecord, error: Exception, attempts: int) -> None:
        logger.error(
            "%s: %s[%d]@%d goes to %s after %d attempts: %r",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            dead_letter_topic(record.topic),
            attempts,
            error,
        )
        headers = (
            ("x-error", f"{type(error).__name__}: {error}"[:2000].encode()),
            ("x-group", self.group.encode()),
            ("x-original-topic", record.topic.encode()),
            ("x-original-partition", str(record.partition).encode()),
            ("x-original-offset", str(record.offset).encode()),
            ("x-attempts", str(attempts).encode()),
            ("x-failed-at", utcnow().isoformat().encode()),
        )
        await self._log.publish(
            [Record(dead_letter_topic(record.topic), record.key, record.value, headers)]
        )
        self._metrics.dead_letters.labels(self.group, record.topic).inc()


class _Committer:
    """Commits a member's offsets off the critical path: the member fetches its next batch while
    the last one's offsets are committed, and batches applied meanwhile are committed together
    in one call (the newest offset per partition). Commits run one at a time, so a partition's
    committed offset never goes back.

    Safe because offsets are committed only after the batch's transaction: a crash before the
    commit lands delivers those records again, and the inbox skips them."""

    def __init__(self, consumer: Consumer, on_committed: Callable[[], None]) -> None:
        self._consumer = consumer
        self._on_committed = on_committed
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.failed = False
        """Whether a commit failed (its error is raised once by `raise_failure` or `flush`)."""

    def add(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self._pending[tp] = max(self._pending.get(tp, 0), offset)
        if self._task is None or self._task.done():
            self.raise_failure()
            self._task = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        while self._pending:
            offsets, self._pending = self._pending, {}
            try:
                await self._consumer.commit(offsets)
            except Exception:
                self.failed = True
                raise
            self._on_committed()

    def raise_failure(self) -> None:
        """Raise what made the last commit fail, if it did (the member then rejoins)."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            self._task = None
            if error is not None:
                raise error

    async def flush(self) -> None:
        """Until every offset added so far is committed (the member adds none meanwhile)."""
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def abandon(self) -> None:
        """Stop committing (the member is leaving after a failure): the records whose offsets
        were not committed are delivered again, to whoever owns their partitions next."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _next_offsets(records: Sequence[ConsumedRecord]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = record.topic_partition
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets
