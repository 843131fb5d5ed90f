"""aiokafka against confluent-kafka for Agora's two Kafka patterns, on a running broker.

Publish: the outbox relay's pattern (`KafkaLog.publish`): a batch of N records (N = 1, 50, 500)
with string keys spread over many keys and ~400-byte JSON values, then wait until every record
of the batch is acknowledged (acks=all, idempotence on, linger `--linger-ms`, 1 as in KafkaLog),
one batch after another. Each client runs for `--duration` seconds per batch size on a fresh
8-partition topic; the figures are records/s and the batch latency (first send to last
acknowledgement) p50/p99.

Consume: the runner's pattern: a consumer group reads `--records` pre-produced records in
batches of up to 500 and commits the next offsets of each batch synchronously before fetching
the next one. The figure is records/s from the first record to the last commit (the group join
is reported apart).

Clients and how each is driven from asyncio:

* `aiokafka`: `await send()` per record, then `gather` the delivery futures (as KafkaLog does);
  `getmany(max_records=500)` + `commit(offsets)`.
* `confluent-callbacks`: `Producer.produce(on_delivery=...)` from the event loop; one thread
  serves delivery reports with `poll(0.1)` and the last report of a batch resolves the batch's
  asyncio future through `call_soon_threadsafe`. The asyncio-friendly pattern: nothing blocks
  the loop, concurrent publishers wait only for their own records.
* `confluent-flush`: `produce()` per record, then `await asyncio.to_thread(producer.flush)`.
  Simplest, but `flush` waits for every record in flight, other publishers' too.
* `confluent-aio`: `confluent_kafka.aio.AIOProducer` (the client's own asyncio wrapper: buffers,
  `produce_batch` in a thread pool); `produce()` per record, `flush()`, gather the futures. It
  refuses headers, which dead-letter records carry.
* consume: `confluent-thread` (`consume(num_messages=500, timeout)` and
  `commit(offsets, asynchronous=False)`, each through `asyncio.to_thread`) and `confluent-aio`
  (`confluent_kafka.aio.AIOConsumer`, the same calls through its thread pool).

Every phase also reports the CPU time of this process (user and system, all threads) and, when
the broker's PID is known (`--broker-pid auto` finds a local `kafka.Kafka` JVM), the broker's.
Progress goes to stderr; stdout gets one JSON line with every figure.

    .venv/bin/python bench/kafka_clients.py --duration 4 --records 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import confluent_kafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka.aio import AIOConsumer, AIOProducer

PARTITIONS = 8
CONSUME_BATCH = 500
POOL = 4096  # distinct pre-built records, cycled through
KEYS = 100_000  # distinct keys the records are spread over

Message = tuple[bytes, bytes]  # key, value


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def make_records(seed: int = 7) -> list[Message]:
    """Order events of about 400 bytes of JSON, keyed by order id over `KEYS` keys."""
    rng = random.Random(seed)
    records: list[Message] = []
    for _ in range(POOL):
        order = f"order-{rng.randrange(KEYS):06d}"
        lines = [
            {
                "sku": f"SKU-{rng.randrange(10_000):05d}",
                "quantity": rng.randrange(1, 5),
                "unit_price": f"{rng.randrange(100, 20_000) / 100:.2f}",
            }
            for _ in range(2)
        ]
        body: dict[str, Any] = {
            "type": "OrderPlaced",
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "order_id": order,
            "customer_id": f"customer-{rng.randrange(50_000):05d}",
            "occurred_at": "2025-01-01T12:00:00.000000+00:00",
            "currency": "EUR",
            "lines": lines,
            "note": "",
        }
        size = len(json.dumps(body, separators=(",", ":")))
        body["note"] = "x" * max(0, 400 - size)
        records.append((order.encode(), json.dumps(body, separators=(",", ":")).encode()))
    return records


# -- CPU accounting -------------------------------------------------------------------------------


def find_broker_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and b"java" in cmdline:
            return int(entry.name)
    return None


def process_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Meter:
    """Wall, this process's CPU (user, system, all threads) and the broker's CPU over a phase."""

    broker_pid: int | None
    wall: float = 0.0
    user: float = 0.0
    system: float = 0.0
    broker: float | None = None

    def __enter__(self) -> Meter:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._start = (time.perf_counter(), usage.ru_utime, usage.ru_stime)
        self._broker_start = process_cpu_seconds(self.broker_pid)
        return self

    def __exit__(self, *_: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall, user, system = self._start
        self.wall = time.perf_counter() - wall
        self.user = usage.ru_utime - user
        self.system = usage.ru_stime - system
        broker_end = process_cpu_seconds(self.broker_pid)
        if self._broker_start is not None and broker_end is not None:
            self.broker = broker_end - self._broker_start

    def figures(self, records: int) -> dict[str, float | None]:
        per_k = 1000 / records if records else 0.0
        return {
            "cpu_user_s": round(self.user, 3),
            "cpu_sys_s": round(self.system, 3),
            "cpu_share_of_one_core": round((self.user + self.system) / self.wall, 3),
            "cpu_ms_per_1k_records": round((self.user + self.system) * 1000 * per_k, 3),
            "broker_cpu_s": None if self.broker is None else round(self.broker, 3),
            "broker_cpu_ms_per_1k_records": (
                None if self.broker is None else round(self.broker * 1000 * per_k, 3)
            ),
        }


# -- Topics ---------------------------------------------------------------------------------------


@dataclass
class Topics:
    bootstrap: str
    run: str
    created: list[str] = field(default_factory=list)
    _admin: Any = None

    async def __aenter__(self) -> Topics:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench-admin")
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            if self.created:
                await self._admin.delete_topics(self.created)
                log(f"deleted {len(self.created)} topics")
        finally:
            await self._admin.close()

    async def fresh(self, label: str) -> str:
        name = f"bench-{self.run}-{label}"
        response = await self._admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        for topic, code, *_ in response.topic_errors:
            if code != 0:
                raise RuntimeError(f"cannot create topic {topic}: error code {code}")
        self.created.append(name)
        await self._ready(name)
        return name

    async def _ready(self, name: str) -> None:
        """Until every partition of `name` has a leader: a new topic's take a moment."""
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            for topic in await self._admin.describe_topics([name]):
                partitions = topic["partitions"]
                if (
                    topic["error_code"] == 0
                    and len(partitions) == PARTITIONS
                    and all(p["leader"] >= 0 for p in partitions)
                ):
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topic {name} has no leaders after 30s")

    async def drop(self, name: str) -> None:
        """Delete a phase's topic at once, so that the broker's disk holds one at a time."""
        await self._admin.delete_topics([name])
        self.created.remove(name)


# -- Publishers -----------------------------------------------------------------------------------


def confluent_producer_config(bootstrap: str, client_id: str, linger_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        # Java's (and aiokafka's) partitioner: a key goes to the same partition with either
        # client. librdkafka's default (consistent_random, CRC32) would move every key.
        "partitioner": "murmur2_random",
    }


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def publish(self, topic: str, batch: Sequence[Message]) -> None: ...
    async def stop(self) -> None: ...


class AiokafkaPublisher:
    """KafkaLog's producer and its `publish`."""

    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="bench-aiokafka",
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def publish(self, topic: str, batch: Sequence[Message]) -> None:
        sends = [await self._producer.send(topic, value=value, key=key) for key, value in batch]
        await asyncio.gather(*sends)

    async def stop(self) -> None:
        await self._producer.stop()


class _Pending:
    """One batch in flight: librdkafka's delivery reports count it down on the poll thread; the
    last one settles the asyncio future on the loop."""

    __slots__ = ("error", "future", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = count
        self.error: confluent_kafka.KafkaError | None = None

    def delivered(self, error: confluent_kafka.KafkaError | None, _message: object) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= 1  # every report of a producer comes on its one poll thread
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(confluent_kafka.KafkaException(self.error))
        else:
            self.future.set_result(None)


async def _produce(
    producer: confluent_kafka.Producer,
    topic: str,
    key: bytes,
    value: bytes,
    on_delivery: Callable[[confluent_kafka.KafkaError | None, Any], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:  # librdkafka's queue is full: let the reports drain it
            await asyncio.sleep(0.001)


class ConfluentCallbackPublisher:
    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        self._producer = confluent_kafka.Producer(
            confluent_producer_config(bootstrap, "bench-confluent-callbacks", linger_ms)
        )
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="delivery-reports", daemon=True)

    def _serve(self) -> None:
        while self._running.is_set():
            self._producer.poll(0.1)  # releases the GIL while it waits

    async def start(self) -> None:
        self._running.set()
        self._thread.start()

    async def publish(self, topic: str, batch: Sequence[Message]) -> None:
        pending = _Pending(asyncio.get_running_loop(), len(batch))
        for key, value in batch:
            await _produce(self._producer, topic, key, value, pending.delivered)
        await pending.future

    async def stop(self) -> None:
        self._running.clear()
        await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self._producer.flush, 30)


class ConfluentFlushPublisher:
    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        self._producer = confluent_kafka.Producer(
            confluent_producer_config(bootstrap, "bench-confluent-flush", linger_ms)
        )
        self._errors: list[confluent_kafka.KafkaError] = []

    def _delivered(self, error: confluent_kafka.KafkaError | None, _message: object) -> None:
        if error is not None:  # served by flush(), on its thread
            self._errors.append(error)

    async def start(self) -> None:
        pass

    async def publish(self, topic: str, batch: Sequence[Message]) -> None:
        for key, value in batch:
            await _produce(self._producer, topic, key, value, self._delivered)
        left = await asyncio.to_thread(self._producer.flush, 30)
        if left or self._errors:
            raise RuntimeError(f"{left} records unacknowledged, errors: {self._errors[:3]}")

    async def stop(self) -> None:
        await asyncio.to_thread(self._producer.flush, 30)


class ConfluentAioPublisher:
    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        self._config = confluent_producer_config(bootstrap, "bench-confluent-aio", linger_ms)
        self._producer: AIOProducer | None = None

    async def start(self) -> None:  # AIOProducer wants a running loop
        self._producer = AIOProducer(self._config)

    async def publish(self, topic: str, batch: Sequence[Message]) -> None:
        assert self._producer is not None
        futures = [
            await self._producer.produce(topic, value=value, key=key) for key, value in batch
        ]
        await self._producer.flush()
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.close()


PUBLISHERS: dict[str, Callable[[str, int], Publisher]] = {
    "aiokafka": AiokafkaPublisher,
    "confluent-callbacks": ConfluentCallbackPublisher,
    "confluent-flush": ConfluentFlushPublisher,
    "confluent-aio": ConfluentAioPublisher,
}


async def bench_publish(
    client: str,
    size: int,
    args: argparse.Namespace,
    topics: Topics,
    records: Sequence[Message],
    broker_pid: int | None,
) -> dict[str, Any]:
    topic = await topics.fresh(f"p-{client}-{size}")
    publisher = PUBLISHERS[client](args.bootstrap, args.linger_ms)
    await publisher.start()
    cursor = 0

    def next_batch() -> Sequence[Message]:
        nonlocal cursor
        if cursor + size > len(records):
            cursor = 0
        batch = records[cursor : cursor + size]
        cursor += size
        return batch

    try:
        # Warm up: metadata, connections, the idempotent producer's id, the JIT of the broker.
        warm_until = time.perf_counter() + args.warmup
        while time.perf_counter() < warm_until:
            await publisher.publish(topic, next_batch())
        latencies: list[float] = []
        sent = 0
        with Meter(broker_pid) as meter:
            deadline = time.perf_counter() + args.duration
            while (started := time.perf_counter()) < deadline:
                await publisher.publish(topic, next_batch())
                latencies.append(time.perf_counter() - started)
                sent += size
    finally:
        await publisher.stop()
    await topics.drop(topic)
    result = {
        "client": client,
        "batch": size,
        "batches": len(latencies),
        "records": sent,
        "seconds": round(meter.wall, 3),
        "records_per_s": round(sent / meter.wall, 1),
        "batches_per_s": round(len(latencies) / meter.wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 3),
        **meter.figures(sent),
    }
    log(
        f"publish {client:20} N={size:<4} {result['records_per_s']:>10,.0f} rec/s"
        f"  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms"
        f"  cpu {result['cpu_ms_per_1k_records']:7.1f} ms/1k"
    )
    return result


# -- Consumers ------------------------------------------------------------------------------------


@dataclass
class Consumed:
    records: int = 0
    value_bytes: int = 0
    batches: int = 0
    short_batches: int = 0  # fewer than CONSUME_BATCH records
    first_at: float | None = None

    def batch(self, count: int) -> None:
        self.records += count
        self.batches += 1
        self.short_batches += count < CONSUME_BATCH


class GroupReader(Protocol):
    async def start(self) -> None: ...
    async def fetch_and_commit(self, seen: Consumed) -> None: ...
    async def stop(self) -> None: ...


class AiokafkaReader:
    def __init__(self, bootstrap: str, group: str, topic: str, timeout: float) -> None:
        # KafkaLog's group consumer options.
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            client_id="bench-aiokafka",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=300_000,
            metadata_max_age_ms=30_000,
        )
        self._timeout_ms = int(timeout * 1000)

    async def start(self) -> None:
        await self._consumer.start()

    async def fetch_and_commit(self, seen: Consumed) -> None:
        batch = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=CONSUME_BATCH)
        if not batch:
            return
        if seen.first_at is None:
            seen.first_at = time.perf_counter()
        offsets: dict[AioPartition, int] = {}
        for tp, messages in batch.items():
            for message in messages:
                message.key.decode()
                seen.value_bytes += len(message.value)
            offsets[tp] = messages[-1].offset + 1
        seen.batch(sum(len(messages) for messages in batch.values()))
        await self._consumer.commit(offsets)

    async def stop(self) -> None:
        await self._consumer.stop()


def confluent_consumer_config(bootstrap: str, group: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 300_000,
        "topic.metadata.refresh.interval.ms": 30_000,
    }


def _read(messages: Sequence[confluent_kafka.Message], seen: Consumed) -> list[Any]:
    ends: dict[tuple[str, int], int] = {}
    for message in messages:
        error = message.error()
        if error is not None:
            raise confluent_kafka.KafkaException(error)
        key, value = message.key(), message.value()
        assert isinstance(key, bytes)
        assert isinstance(value, bytes)
        key.decode()
        seen.value_bytes += len(value)
        ends[(str(message.topic()), int(message.partition() or 0))] = int(message.offset() or 0)
    seen.batch(len(messages))
    return [confluent_kafka.TopicPartition(t, p, offset + 1) for (t, p), offset in ends.items()]


class ConfluentThreadReader:
    """The synchronous Consumer, each blocking call through `asyncio.to_thread`."""

    def __init__(self, bootstrap: str, group: str, topic: str, timeout: float) -> None:
        self._consumer = confluent_kafka.Consumer(
            confluent_consumer_config(bootstrap, group, "bench-confluent-thread")
        )
        self._topic = topic
        self._timeout = timeout

    async def start(self) -> None:
        self._consumer.subscribe([self._topic])

    async def fetch_and_commit(self, seen: Consumed) -> None:
        messages = await asyncio.to_thread(self._consumer.consume, CONSUME_BATCH, self._timeout)
        if not messages:
            return
        if seen.first_at is None:
            seen.first_at = time.perf_counter()
        offsets = _read(messages, seen)
        await asyncio.to_thread(self._consumer.commit, offsets=offsets, asynchronous=False)

    async def stop(self) -> None:
        await asyncio.to_thread(self._consumer.close)


class ConfluentAioReader:
    def __init__(self, bootstrap: str, group: str, topic: str, timeout: float) -> None:
        self._config = confluent_consumer_config(bootstrap, group, "bench-confluent-aio")
        self._topic = topic
        self._timeout = timeout
        self._consumer: AIOConsumer | None = None

    async def start(self) -> None:  # AIOConsumer wants a running loop
        self._consumer = AIOConsumer(self._config, max_workers=2)
        await self._consumer.subscribe([self._topic])

    async def fetch_and_commit(self, seen: Consumed) -> None:
        assert self._consumer is not None
        messages = await self._consumer.consume(num_messages=CONSUME_BATCH, timeout=self._timeout)
        if not messages:
            return
        if seen.first_at is None:
            seen.first_at = time.perf_counter()
        offsets = _read(messages, seen)
        await self._consumer.commit(offsets=offsets, asynchronous=False)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()


READERS: dict[str, Callable[[str, str, str, float], GroupReader]] = {
    "aiokafka": AiokafkaReader,
    "confluent-thread": ConfluentThreadReader,
    "confluent-aio": ConfluentAioReader,
}


async def prefill(bootstrap: str, topic: str, count: int, records: Sequence[Message]) -> None:
    """`count` records on `topic`, produced as fast as librdkafka goes (not measured)."""
    config = confluent_producer_config(bootstrap, "bench-prefill", 20)
    producer = confluent_kafka.Producer(config)
    errors: list[confluent_kafka.KafkaError] = []

    def delivered(error: confluent_kafka.KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(error)

    def produce_all() -> int:
        for i in range(count):
            key, value = records[i % len(records)]
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        return producer.flush(60)

    left = await asyncio.to_thread(produce_all)
    if left or errors:
        raise RuntimeError(f"prefill: {left} records unacknowledged, errors: {errors[:3]}")


async def bench_consume(
    client: str,
    args: argparse.Namespace,
    topics: Topics,
    records: Sequence[Message],
    broker_pid: int | None,
) -> dict[str, Any]:
    topic = await topics.fresh(f"c-{client}")
    await prefill(args.bootstrap, topic, args.records, records)
    group = f"bench-{topics.run}-{client}"
    reader = READERS[client](args.bootstrap, group, topic, 0.5)
    seen = Consumed()
    try:
        with Meter(broker_pid) as meter:
            started = time.perf_counter()
            await reader.start()
            stalled_since = time.perf_counter()
            while seen.records < args.records:
                before = seen.records
                await reader.fetch_and_commit(seen)
                if seen.records > before:
                    stalled_since = time.perf_counter()
                elif time.perf_counter() - stalled_since > 30:
                    raise RuntimeError(f"{client}: no record for 30s at {seen.records}")
            finished = time.perf_counter()
    finally:
        await reader.stop()
    await topics.drop(topic)
    if seen.records != args.records:
        raise RuntimeError(f"{client}: read {seen.records} records, expected {args.records}")
    assert seen.first_at is not None
    steady = finished - seen.first_at
    result = {
        "client": client,
        "records": seen.records,
        "batches": seen.batches,
        "mean_batch": round(seen.records / seen.batches, 1),
        "short_batches": seen.short_batches,
        "join_s": round(seen.first_at - started, 3),
        "seconds": round(steady, 3),
        "records_per_s": round(seen.records / steady, 1),
        "commits_per_s": round(seen.batches / steady, 1),
        # CPU covers the join too: a few idle heartbeats, next to nothing.
        **meter.figures(seen.records),
    }
    log(
        f"consume {client:20} {result['records_per_s']:>10,.0f} rec/s"
        f"  {result['batches']} batches of {result['mean_batch']}"
        f"  join {result['join_s']:.2f} s  cpu {result['cpu_ms_per_1k_records']:7.1f} ms/1k"
    )
    return result


# -- Main -----------------------------------------------------------------------------------------


def rotated(items: Sequence[str], by: int) -> list[str]:
    """A different client goes first for each batch size: no one always meets a cold broker."""
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    broker_pid = (
        find_broker_pid()
        if args.broker_pid == "auto"
        else None
        if args.broker_pid == "none"
        else int(args.broker_pid)
    )
    records = make_records()
    mean_value = sum(len(v) for _, v in records) / len(records)
    log(
        f"kafka_clients: {args.bootstrap}, aiokafka {version('aiokafka')}, confluent-kafka "
        f"{version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}), "
        f"values {mean_value:.0f} B, broker pid {broker_pid}"
    )
    produce: list[dict[str, Any]] = []
    consume: list[dict[str, Any]] = []
    started = time.perf_counter()
    async with Topics(args.bootstrap, uuid.uuid4().hex[:8]) as topics:
        for index, size in enumerate(args.sizes):
            for client in rotated(args.publishers, index):
                produce.append(await bench_publish(client, size, args, topics, records, broker_pid))
        for client in args.readers:
            consume.append(await bench_consume(client, args, topics, records, broker_pid))
    return {
        "bench": "kafka_clients",
        "bootstrap": args.bootstrap,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "aiokafka": version("aiokafka"),
        "confluent_kafka": version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "partitions": PARTITIONS,
        "value_bytes": round(mean_value, 1),
        "keys": KEYS,
        "acks": "all",
        "idempotence": True,
        "linger_ms": args.linger_ms,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "consume_batch": CONSUME_BATCH,
        "produce": produce,
        "consume": consume,
        "total_s": round(time.perf_counter() - started, 1),
    }


def csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        """Comma-separated names, or `none` to skip the phase."""
        if text.strip() == "none":
            return []
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = sorted(set(items) - set(choices))
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose among {', '.join(choices)}, or none")
        return items

    return parse


def sizes(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError("comma-separated batch sizes") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("batch sizes are positive")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("AGORA_KAFKA_BOOTSTRAP", "127.0.0.1:59092"),
        help="Kafka bootstrap servers (default: $AGORA_KAFKA_BOOTSTRAP or 127.0.0.1:59092)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=4.0,
        help="seconds measured per publisher and batch size (default 4)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.5,
        help="seconds of unmeasured publishing before each measurement (default 0.5)",
    )
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=1,
        help="the producers' linger (default 1, KafkaLog's)",
    )
    parser.add_argument(
        "--records",
        type=int,
        default=50_000,
        help="records each consumer group reads (default 50000)",
    )
    parser.add_argument(
        "--sizes", type=sizes, default=[1, 50, 500], help="publish batch sizes (default 1,50,500)"
    )
    parser.add_argument(
        "--publishers",
        type=csv(list(PUBLISHERS)),
        default=list(PUBLISHERS),
        help=f"among {','.join(PUBLISHERS)}, or none (default: all)",
    )
    parser.add_argument(
        "--readers",
        type=csv(list(READERS)),
        default=list(READERS),
        help=f"among {','.join(READERS)}, or none (default: all)",
    )
    parser.add_argument(
        "--broker-pid",
        default="auto",
        help="the broker's PID for its CPU time: a number, auto (a local kafka.Kafka JVM) or none",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    print(json.dumps(asyncio.run(main(arguments))), flush=True)
