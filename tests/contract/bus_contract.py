"""The contract of the bus port `agora.messaging.ports.MessageLog`, for every backend.

`BusContract` holds the tests. A backend subclasses it once (`TestEmbeddedBus`, later
`TestKafkaBus`) and implements `open_log`. The tests use nothing but the port and the consumer
runner built on it, and give every topic, group and key a unique name, so that they also hold
on a broker shared by many tests and runs.

Nothing here sleeps to synchronise: every wait polls a condition until a deadline.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from agora.messaging import (
    ConsumedRecord,
    Consumer,
    ConsumerRunner,
    Database,
    DeadLetter,
    Envelope,
    Event,
    EventHandlers,
    EventRegistry,
    MessageLog,
    MessagingMetrics,
    Record,
    RetryPolicy,
    TopicPartition,
    UnitOfWork,
    add_inbox_table,
    add_outbox_table,
    list_dead_letters,
    replay_dead_letters,
    sqlite_url,
)

DEADLINE = 15.0
"""Seconds any one wait may take before the test fails (generous for a real broker)."""

RUN_ID = uuid.uuid4().hex[:12]

T = TypeVar("T")


class Pinged(Event):
    """The event of the runner tests. Its topic is unique to this test run; tests within a run
    tell their events apart by the `ping_id` prefix (see `PingService.ping`)."""

    topic: ClassVar[str] = f"contract-pinged-{RUN_ID}"
    key_field: ClassVar[str] = "ping_id"

    ping_id: str
    n: int


# -- helpers ---------------------------------------------------------------------------------


def unique(name: str) -> str:
    return f"contract-{name}-{uuid.uuid4().hex[:12]}"


def values(records: Sequence[Record | ConsumedRecord]) -> list[bytes]:
    return sorted(record.value for record in records)


def next_offsets(records: Sequence[ConsumedRecord]) -> dict[TopicPartition, int]:
    """The offsets to commit after `records`: one past the last one, per partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        offsets[record.topic_partition] = max(
            offsets.get(record.topic_partition, 0), record.offset + 1
        )
    return offsets


def all_partitions(topic: str, partitions: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(partitions)}


async def poll(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Call `probe` until `done(result)` holds and return that result; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        result = await probe()
        if done(result):
            return result
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}; last saw {result!r}")
        await asyncio.sleep(0.01)


async def fetch_until(
    consumer: Consumer,
    done: Callable[[list[ConsumedRecord]], bool],
    *,
    max_records: int = 100,
) -> list[ConsumedRecord]:
    """Fetch into one list until `done(list)` holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    got: list[ConsumedRecord] = []
    while not done(got):
        remaining = deadline - loop.time()
        if remaining <= 0:
            pytest.fail(f"timed out fetching: have {len(got)} records {got!r}")
        got += await consumer.fetch(max_records, timeout=min(remaining, 0.2))
    return got


async def fetch_count(
    consumer: Consumer, count: int, *, max_records: int = 100
) -> list[ConsumedRecord]:
    return await fetch_until(consumer, lambda got: len(got) >= count, max_records=max_records)


async def settled_split(
    a: Consumer, b: Consumer, partitions: set[TopicPartition]
) -> tuple[set[TopicPartition], set[TopicPartition]]:
    """Wait until members `a` and `b` of one group own disjoint, non-empty sets of partitions
    that together cover `partitions` (`lag()` reports a member's assignment); return them."""

    async def assignments() -> tuple[set[TopicPartition], set[TopicPartition]]:
        return set(await a.lag()), set(await b.lag())

    def split(owned: tuple[set[TopicPartition], set[TopicPartition]]) -> bool:
        mine, theirs = owned
        return bool(mine and theirs and mine.isdisjoint(theirs) and mine | theirs == partitions)

    return await poll(assignments, split, "two members to split the partitions")


@contextlib.asynccontextmanager
async def closing(*consumers: Consumer) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for consumer in consumers:
            await consumer.close()


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[None]:
    """Run `runner` for the block, then stop it and wait until it has left its group."""
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        runner.stop()
        await asyncio.wait_for(task, DEADLINE)


def event_record(event: Pinged) -> Record:
    """`event` in a fresh envelope, as the outbox relay would publish it."""
    return Record(event.topic, event.key, Envelope.wrap(event, source="test").to_bytes())


@dataclasses.dataclass
class PingService:
    """One consumer group applying `Pinged` events to a SQLite database of its own.

    The handler writes an effect row and then fails if `failures` says so, so a failed attempt
    that leaked its effect would show up as an extra row.
    """

    db: Database
    outbox: Table
    inbox: Table
    effects: Table
    group: str = dataclasses.field(default_factory=lambda: unique("group"))
    token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    calls: Counter[Pinged] = dataclasses.field(default_factory=Counter)
    failures: dict[Pinged, float] = dataclasses.field(default_factory=dict)

    # While set and not open, the handler waits at it before writing (a test stops a server
    # meanwhile).
    gate: asyncio.Event | None = None

    @classmethod
    async def create(cls, path: Path | str) -> PingService:
        """On a SQLite file at `path`, or on the database a URL names."""
        metadata = MetaData()
        outbox = add_outbox_table(metadata)
        inbox = add_inbox_table(metadata)
        effects = Table(
            "effects",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("ping_id", String, nullable=False),
            Column("n", Integer, nullable=False),
        )
        db = Database(path if isinstance(path, str) else sqlite_url(path), metadata)
        await db.create_tables()
        return cls(db, outbox, inbox, effects)

    def ping(self, name: str, n: int = 0) -> Pinged:
        """An event of this test: equal `name`s share a key, hence a partition and its order."""
        return Pinged(ping_id=f"{self.token}-{name}", n=n)

    async def handle(self, event: Pinged, uow: UnitOfWork) -> None:
        if not event.ping_id.startswith(self.token):
            return  # another test's event on the shared topic (a broker outlives a test)
        self.calls[event] += 1
        if self.gate is not None:
            await self.gate.wait()
        await uow.conn.execute(self.effects.insert().values(ping_id=event.ping_id, n=event.n))
        if self.failures.get(event, 0) > 0:
            self.failures[event] -= 1
            raise RuntimeError(f"{event.ping_id} failed")

    def runner(
        self,
        log: MessageLog,
        *,
        attempts: int = 3,
        batch_size: int = 200,
        metrics: CollectorRegistry | None = None,
    ) -> ConsumerRunner:
        handlers = EventHandlers(
            self.group,
            {Pinged: self.handle},
            lambda: UnitOfWork(self.db, self.outbox, source="test"),
            self.inbox,
        )
        return ConsumerRunner(
            log,
            handlers,
            EventRegistry([Pinged]),
            MessagingMetrics(metrics or CollectorRegistry()),
            batch_size=batch_size,
            retry=RetryPolicy(attempts=attempts, first_delay=0.001, max_delay=0.01),
            fetch_timeout=0.05,
        )

    async def applied(self) -> Counter[Pinged]:
        """Effect rows per event of this test."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(self.effects.c.ping_id, self.effects.c.n, func.count()).group_by(
                    self.effects.c.ping_id, self.effects.c.n
                )
            )
            return Counter(
                {
                    Pinged(ping_id=ping_id, n=n): count
                    for ping_id, n, count in rows
                    if ping_id.startswith(self.token)
                }
            )

    async def wait_applied(self, *events: Pinged) -> None:
        await poll(
            self.applied,
            lambda applied: all(applied[event] for event in events),
            f"{len(events)} events to be applied",
        )

    async def dead_letters(self, log: MessageLog) -> list[DeadLetter]:
        """Dead letters of this test's events."""
        letters = await list_dead_letters(log, [Pinged.topic])
        return [letter for letter in letters if letter.key.startswith(self.token)]


# -- the contract ----------------------------------------------------------------------------


class BusContract(abc.ABC):
    """What every `MessageLog` backend must do. Subclass it as `Test<Backend>Bus`."""

    @abc.abstractmethod
    async def open_log(self, location: Path) -> MessageLog:
        """Open the log at `location`; opening the same location again, after closing, must
        give back the same log (a backend with a server ignores `location`)."""

    @pytest.fixture
    def log_location(self, tmp_path: Path) -> Path:
        return tmp_path / "bus"

    @pytest.fixture
    async def log(self, log_location: Path) -> AsyncIterator[MessageLog]:
        log = await self.open_log(log_location)
        yield log
        await log.close()

    @pytest.fixture
    async def service(self, tmp_path: Path) -> AsyncIterator[PingService]:
        service = await PingService.create(tmp_path / "svc.db")
        yield service
        await service.db.dispose()

    # -- the log ---------------------------------------------------------------------------

    async def test_records_round_trip(self, log: MessageLog) -> None:
        """Key, binary value and headers (order and repeats kept) come back as published,
        both to a consumer and to `read`."""
        # Header values are UTF-8 here: the embedded log stores them as text for now.
        topic = unique("round-trip")
        record = Record(
            topic, "k", b"\x00\xff\x80 binary", (("h", b"one"), ("empty", b""), ("h", b"\xc3\xa9"))
        )
        await log.publish([record])
        consumer = log.consumer(unique("group"), [topic])
        async with closing(consumer):
            [fetched] = await fetch_count(consumer, 1)
        [read] = await log.read(topic)
        for got in (fetched, read):
            assert (got.topic, got.key, got.value, got.headers, got.offset) == (
                topic,
                record.key,
                record.value,
                record.headers,
                0,
            )
            assert got.header("h") == b"one"
            assert got.header("missing") is None

    async def test_records_with_one_key_arrive_in_publish_order(self, log: MessageLog) -> None:
        """Per key, a consumer gets the values in publish order, whether they were published in
        one call or in calls one after another; equal keys share one partition."""
        topic = unique("order")
        await log.create_topics([topic], partitions=4)
        keys = [f"key-{i}" for i in range(5)]
        published: list[Record] = []
        for call in range(6):
            batch = [
                Record(topic, key, f"{key}/{call}/{i}".encode()) for i in range(4) for key in keys
            ]
            await log.publish(batch)
            published += batch

        consumer = log.consumer(unique("group"), [topic])
        async with closing(consumer):
            got = await fetch_count(consumer, len(published), max_records=7)

        assert len(got) == len(published)
        for key in keys:
            assert [r.value for r in got if r.key == key] == [
                r.value for r in published if r.key == key
            ]
            assert len({r.partition for r in got if r.key == key}) == 1
        for partition in {r.partition for r in got}:
            offsets = [r.offset for r in got if r.partition == partition]
            assert offsets == sorted(set(offsets))

    async def test_uncommitted_records_are_delivered_again(self, log: MessageLog) -> None:
        """A member that dies before committing loses nothing: the next member of its group gets
        the same records. Once they are committed, a new member starts after them."""
        topic, group = unique("redeliver"), unique("group")
        await log.create_topics([topic], partitions=4)
        published = [Record(topic, f"k{i % 3}", f"v{i}".encode()) for i in range(12)]
        await log.publish(published)

        crashed = log.consumer(group, [topic])
        async with closing(crashed):
            first = await fetch_count(crashed, len(published))

        second = log.consumer(group, [topic])
        async with closing(second):
            again = await fetch_count(second, len(published))
            await second.commit(next_offsets(again))

        assert sorted((r.partition, r.offset, r.value) for r in again) == sorted(
            (r.partition, r.offset, r.value) for r in first
        )
        assert values(again) == values(published)
        assert await log.committed(group, topic) == {
            tp.partition: offset for tp, offset in next_offsets(again).items()
        }

        await log.publish([Record(topic, "k-late", b"late")])
        third = log.consumer(group, [topic])
        async with closing(third):
            rest = await fetch_until(third, lambda got: b"late" in values(got))
        assert values(rest) == [b"late"]

    async def test_every_group_sees_every_record(self, log: MessageLog) -> None:
        """Groups are independent: each new group reads the topic from the start, and one
        group's commits do not move another's."""
        topic, group_a, group_b = unique("groups"), unique("group"), unique("group")
        await log.create_topics([topic], partitions=4)
        published = [Record(topic, f"k{i}", f"v{i}".encode()) for i in range(20)]
        await log.publish(published)

        a, b = log.consumer(group_a, [topic]), log.consumer(group_b, [topic])
        async with closing(a, b):
            got_a = await fetch_count(a, len(published))
            await a.commit(next_offsets(got_a))
            got_b = await fetch_count(b, len(published))

        assert values(got_a) == values(got_b) == values(published)
        assert sum(offset for offset in (await log.committed(group_a, topic)).values()) == 20
        assert await log.committed(group_b, topic) == {}

    async def test_members_of_one_group_split_the_partitions(self, log: MessageLog) -> None:
        """Two members of one group own disjoint partitions covering the topic, each gets only
        its own partitions' records, and together they get every record exactly once."""
        topic, group = unique("split"), unique("group")
        await log.create_topics([topic], partitions=4)
        a, b = log.consumer(group, [topic]), log.consumer(group, [topic])
        async with closing(a, b):
            owned_a, owned_b = await settled_split(a, b, all_partitions(topic, 4))
            published = [Record(topic, f"k{i}", f"v{i}".encode()) for i in range(40)]
            await log.publish(published)

            got_a: list[ConsumedRecord] = []
            got_b: list[ConsumedRecord] = []

            async def both() -> int:
                batch_a, batch_b = await asyncio.gather(a.fetch(50, 0.1), b.fetch(50, 0.1))
                got_a.extend(batch_a)
                got_b.extend(batch_b)
                return len(got_a) + len(got_b)

            await poll(both, lambda total: total >= len(published), "both members to fetch")

        assert got_a
        assert got_b
        assert {r.topic_partition for r in got_a} <= owned_a
        assert {r.topic_partition for r in got_b} <= owned_b
        assert values(got_a + got_b) == values(published)

    async def test_commit_ignores_partitions_the_member_does_not_own(self, log: MessageLog) -> None:
        """A member's commit only moves the offsets of the partitions assigned to it."""
        topic, group = unique("owned"), unique("group")
        await log.create_topics([topic], partitions=4)
        a, b = log.consumer(group, [topic]), log.consumer(group, [topic])
        async with closing(a, b):
            owned_a, _ = await settled_split(a, b, all_partitions(topic, 4))
            await a.commit(dict.fromkeys(all_partitions(topic, 4), 0))
            assert set(await log.committed(group, topic)) == {tp.partition for tp in owned_a}

    async def test_lag_counts_records_not_yet_committed(self, log: MessageLog) -> None:
        """`lag` counts, per assigned partition, the records the group has not committed:
        fetching alone does not reduce it, committing does."""
        topic, group = unique("lag"), unique("group")
        await log.create_topics([topic], partitions=4)
        await log.publish([Record(topic, f"k{i}", b"v") for i in range(10)])
        consumer = log.consumer(group, [topic])
        async with closing(consumer):
            lag = await poll(
                consumer.lag,
                lambda lag: set(lag) == all_partitions(topic, 4),
                "the member to own every partition",
            )
            assert sum(lag.values()) == 10
            got = await fetch_count(consumer, 10)
            assert sum((await consumer.lag()).values()) == 10
            await consumer.commit(next_offsets(got))
            assert await consumer.lag() == dict.fromkeys(all_partitions(topic, 4), 0)

    async def test_end_offsets_and_committed_offsets(self, log: MessageLog) -> None:
        """`end_offsets` tells where the next append to each partition goes, and `committed`
        what a group has committed, outside any group membership."""
        topic, group = unique("ends"), unique("group")
        await log.create_topics([topic], partitions=4)
        assert await log.end_offsets(topic) == dict.fromkeys(range(4), 0)
        await log.publish([Record(topic, f"k{i}", b"v") for i in range(10)])
        ends = await log.end_offsets(topic)
        assert sum(ends.values()) == 10
        consumer = log.consumer(group, [topic])
        async with closing(consumer):
            got = await fetch_count(consumer, 10)
            await consumer.commit(next_offsets(got))
        committed = await log.committed(group, topic)
        assert {p: o for p, o in committed.items() if o} == {p: o for p, o in ends.items() if o}

    async def test_records_and_commits_survive_reopening(self, log_location: Path) -> None:
        """After the log is closed and opened again, its records and committed offsets are
        there: the group resumes after its commit, and new appends continue the offsets."""
        topic, group = unique("reopen"), unique("group")
        consumed = [Record(topic, f"k{i}", f"old{i}".encode(), (("h", b"x"),)) for i in range(4)]
        pending = [Record(topic, f"k{i}", f"new{i}".encode()) for i in range(3)]

        log = await self.open_log(log_location)
        try:
            await log.create_topics([topic], partitions=4)
            await log.publish(consumed)
            consumer = log.consumer(group, [topic])
            async with closing(consumer):
                await consumer.commit(next_offsets(await fetch_count(consumer, len(consumed))))
            await log.publish(pending)
            committed = await log.committed(group, topic)
            before = await log.read(topic)
        finally:
            await log.close()

        log = await self.open_log(log_location)
        try:
            assert await log.committed(group, topic) == committed
            assert await log.read(topic) == before
            consumer = log.consumer(group, [topic])
            async with closing(consumer):
                resumed = await fetch_count(consumer, len(pending))
            assert values(resumed) == values(pending)

            await log.publish([Record(topic, "k0", b"after")])
            after = await log.read(topic)
            assert len({(r.partition, r.offset) for r in after}) == len(before) + 1
        finally:
            await log.close()

    # -- the consumer runner on top of the log -----------------------------------------------

    async def test_runner_applies_each_event_once(
        self, log: MessageLog, service: PingService
    ) -> None:
        """The inbox makes redelivery harmless: envelope bytes published twice, within one
        batch or again later, reach the handler and change the service's state once."""
        a, b = service.ping("a"), service.ping("b")
        after_a, after_b = service.ping("a", 1), service.ping("b", 1)
        record_a, record_b = event_record(a), event_record(b)
        await log.publish([record_a, record_a, record_b])

        async with running(service.runner(log)):
            await service.wait_applied(a, b)
            await log.publish([record_a])
            await log.publish([record_b, event_record(after_a), event_record(after_b)])
            await service.wait_applied(after_a, after_b)  # same keys: after the duplicates

        expected = Counter({a: 1, b: 1, after_a: 1, after_b: 1})
        assert await service.applied() == expected
        assert service.calls == expected

    async def test_runner_retries_a_failing_handler(
        self, log: MessageLog, service: PingService
    ) -> None:
        """A handler that fails `attempts - 1` times is retried until it succeeds; the failed
        attempts leave no effect and nothing is dead-lettered."""
        flaky = service.ping("flaky")
        service.failures[flaky] = 3
        await log.publish([event_record(flaky)])

        async with running(service.runner(log, attempts=4)):
            await service.wait_applied(flaky)

        assert service.calls[flaky] == 4
        assert await service.applied() == Counter({flaky: 1})
        assert await service.dead_letters(log) == []

    async def test_runner_dead_letters_an_event_that_keeps_failing(
        self, log: MessageLog, service: PingService
    ) -> None:
        """An event whose handler always fails goes to `<topic>.dlt` after exactly `attempts`
        tries, with the error, group and attempts; the events around it are applied."""
        doomed = service.ping("x", 1)
        good = [service.ping("x", 0), service.ping("x", 2), service.ping("y")]
        service.failures[doomed] = math.inf
        doomed_record = event_record(doomed)
        await log.publish([event_record(good[0]), doomed_record, *map(event_record, good[1:])])

        async with running(service.runner(log, attempts=3, batch_size=1)):
            await service.wait_applied(*good)  # good[1] follows `doomed` in its partition

        assert await service.applied() == Counter(dict.fromkeys(good, 1))
        assert service.calls[doomed] == 3
        [letter] = await service.dead_letters(log)
        assert letter.original_topic == Pinged.topic
        assert (letter.key, letter.value) == (doomed.key, doomed_record.value)
        assert (letter.group, letter.attempts, letter.replayed) == (service.group, 3, False)
        assert letter.error == f"RuntimeError: {doomed.ping_id} failed"

    async def test_runner_rolls_back_a_failing_batch(
        self, log: MessageLog, service: PingService
    ) -> None:
        """A batch with one failing event is rolled back and retried event by event: every
        other event's effect is applied exactly once and only the failing one is dead-lettered."""
        good = [service.ping(f"g{i}") for i in range(5)]
        doomed = service.ping("doomed")
        service.failures[doomed] = math.inf
        await log.publish([event_record(e) for e in [*good[:2], doomed, *good[2:]]])

        async with running(service.runner(log, attempts=2)):
            await service.wait_applied(*good)
            letters = await poll(
                lambda: service.dead_letters(log), bool, "the failing event's dead letter"
            )

        assert await service.applied() == Counter(dict.fromkeys(good, 1))
        assert [(letter.key, letter.attempts) for letter in letters] == [(doomed.key, 2)]

    async def test_runner_dead_letters_poison_at_once(
        self, log: MessageLog, service: PingService
    ) -> None:
        """Records that can never be read (not JSON; an unknown event type) go to the dead
        letters without a handler attempt, and the runner goes on consuming."""
        good, later = service.ping("p", 0), service.ping("p", 1)
        not_json = Record(Pinged.topic, good.key, b"\xff{ not json")
        envelope = dataclasses.replace(Envelope.wrap(good, source="test"), type="NoSuchEvent")
        unknown = Record(Pinged.topic, good.key, envelope.to_bytes())
        await log.publish([not_json, unknown, event_record(good)])

        async with running(service.runner(log)):
            await service.wait_applied(good)  # same key: after the poison
            await log.publish([event_record(later)])
            await service.wait_applied(later)

        assert service.calls == Counter({good: 1, later: 1})
        letters = await service.dead_letters(log)
        assert sorted(
            (letter.value, letter.attempts, letter.group) for letter in letters
        ) == sorted([(not_json.value, 0, service.group), (unknown.value, 0, service.group)])
        assert all(letter.error.startswith("DecodeError: ") for letter in letters)

    async def test_runner_reports_a_source_whose_clock_runs_ahead(
        self, log: MessageLog, service: PingService
    ) -> None:
        """An event stamped two minutes from now says its source's clock runs ahead: the group
        reports it on `agora_peer_clock_ahead_seconds` and applies it all the same, as it does
        one whose time names no zone (no clock to tell)."""
        ahead, naive = service.ping("c", 0), service.ping("c", 1)
        stamped = Envelope.wrap(ahead, source="skewed")
        stamped = dataclasses.replace(
            stamped, occurred_at=stamped.occurred_at + timedelta(minutes=2)
        )
        zoneless = Envelope.wrap(naive, source="zoneless")
        zoneless = dataclasses.replace(
            zoneless, occurred_at=zoneless.occurred_at.replace(tzinfo=None)
        )
        await log.publish([Record(Pinged.topic, e.key, e.to_bytes()) for e in (stamped, zoneless)])
        registry = CollectorRegistry()

        async with running(service.runner(log, metrics=registry)):
            await service.wait_applied(ahead, naive)

        reported = registry.get_sample_value("agora_peer_clock_ahead_seconds", {"peer": "skewed"})
        assert reported is not None
        assert 100 < reported <= 120
        assert (
            registry.get_sample_value("agora_peer_clock_ahead_seconds", {"peer": "zoneless"})
            is None
        )
        assert await service.dead_letters(log) == []

    async def test_replayed_dead_letters_are_applied(
        self, log: MessageLog, service: PingService
    ) -> None:
        """`replay_dead_letters` publishes dead letters back to their topic; once the handler is
        fixed they are applied, and `list_dead_letters` marks them replayed."""
        broken, after = service.ping("r", 0), service.ping("r", 1)
        service.failures[broken] = math.inf
        await log.publish([event_record(broken), event_record(after)])

        async with running(service.runner(log, attempts=2)):
            await service.wait_applied(after)  # same key: `broken` is dead-lettered by now
            [letter] = await service.dead_letters(log)
            assert not letter.replayed

            del service.failures[broken]  # the handler is fixed
            letters = await list_dead_letters(log, [Pinged.topic])
            pending = [letter for letter in letters if not letter.replayed]
            assert await replay_dead_letters(log, [Pinged.topic]) == len(pending)
            await service.wait_applied(broken)

        assert await service.applied() == Counter({broken: 1, after: 1})
        [letter] = await service.dead_letters(log)
        assert letter.replayed
