"""The bus port on Apache Kafka (aiokafka).

Producer: `acks=all` and idempotence, so a retried send neither reorders nor duplicates a key's
records; `publish` returns once every record is acknowledged by the in-sync replicas, and fails
(`KafkaTimeoutError`) if they are not within the request timeout. Consumers:
manual commits only (the runner commits after the effects are durable), `earliest` reset, and
Kafka's own group protocol for splitting partitions. Topics are created through the admin API
(brokers should run with `auto.create.topics.enable=false`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from agora.messaging.ports import ConsumedRecord, Consumer, Record, TopicPartition

__all__ = ["KafkaLog"]

logger = logging.getLogger(__name__)


class KafkaLog:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "agora",
        default_partitions: int = 8,
        replication_factor: int = 1,
        linger_ms: int = 0,
        namespace: str = "",
        request_timeout: float = 10.0,
    ) -> None:
        """`namespace` prefixes every topic and group name on the cluster, so that several
        environments (or test runs) can share one cluster without seeing each other.
        `request_timeout` bounds every request to the cluster and a publish's wait for its
        acknowledgements: a publish the cluster does not acknowledge in time fails
        (`KafkaTimeoutError`) rather than wait for as long as the cluster is away."""
        self._namespace = namespace
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._default_partitions = default_partitions
        self._replication_factor = replication_factor
        self._linger_ms = linger_ms
        self._request_timeout_ms = max(1, round(request_timeout * 1000))
        # aiokafka's clients belong to an event loop: they are made in `open`.
        self._producer: AIOKafkaProducer = None
        self._admin: AIOKafkaAdminClient = None
        self._known_topics: set[str] = set()
        self._topics_lock = asyncio.Lock()
        self._unacknowledged: set[asyncio.Future[Any]] = set()

    def _name(self, topic: str) -> str:
        return f"{self._namespace}{topic}"

    async def open(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=self._request_timeout_ms,
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-admin",
            request_timeout_ms=self._request_timeout_ms,
        )
        await self._admin.start()
        await self._producer.start()
        self._known_topics.update(await self._admin.list_topics())

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def create_topics(self, topics: Sequence[str], partitions: int) -> None:
        async with self._topics_lock:
            missing = [self._name(t) for t in topics if self._name(t) not in self._known_topics]
            if not missing:
                return
            self._known_topics.update(await self._admin.list_topics())
            missing = [topic for topic in missing if topic not in self._known_topics]
            if missing:
                response = await self._admin.create_topics(
                    [NewTopic(t, partitions, self._replication_factor) for t in missing]
                )
                for topic, code, *_ in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise RuntimeError(f"cannot create topic {topic}: error code {code}")
                self._known_topics.update(missing)
        await self._wait_for_metadata(missing)

    async def _wait_for_metadata(self, topics: Sequence[str]) -> None:
        """Until the producer's metadata knows every partition of `topics` (a new topic's leaders
        take a moment to be elected)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        for topic in topics:
            while not self._producer.client.cluster.partitions_for_topic(topic):
                if loop.time() > deadline:
                    raise TimeoutError(f"topic {topic} has no leaders after 30s")
                self._producer.client.add_topic(topic)
                await self._producer.client.force_metadata_update()

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        await self.create_topics(sorted({r.topic for r in records}), self._default_partitions)
        await self._acknowledged(set(self._unacknowledged))
        sends = [
            await self._producer.send(
                self._name(record.topic),
                value=record.value,
                key=record.key.encode(),
                headers=list(record.headers),
            )
            for record in records
        ]
        await self._acknowledged({asyncio.gather(*sends)})

    async def _acknowledged(self, sends: set[asyncio.Future[Any]]) -> None:
        """Wait up to the request timeout for `sends` to be acknowledged, else raise
        `KafkaTimeoutError`. The idempotent producer never gives up on a record (it retries
        until the cluster answers, keeping each partition's order), so without this bound a
        publish would wait for as long as the cluster is away, and its caller never learn of
        the outage. Records not acknowledged in time stay with the producer, which delivers
        them once the cluster is back; the next publish waits for them first, so an outage
        buffers one copy of what was sent, not one per try."""
        if not sends:
            return
        done, pending = await asyncio.wait(sends, timeout=self._request_timeout_ms / 1000)
        self._unacknowledged = (self._unacknowledged | pending) - done
        errors = [error for send in done if (error := send.exception()) is not None]
        if errors:
            raise errors[0]
        if pending:
            raise KafkaTimeoutError(
                f"records not acknowledged within {self._request_timeout_ms} ms"
            )

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return _KafkaConsumer(self, group, tuple(topics))

    def _new_consumer(self, group: str | None, **options: object) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-{group or 'reader'}",
            group_id=None if group is None else self._name(group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **options,
        )

    async def _partitions(self, topic: str) -> list[KafkaPartition]:
        await self.create_topics([topic], self._default_partitions)
        name = self._name(topic)
        await self._wait_for_metadata([name])
        partitions = self._producer.client.cluster.partitions_for_topic(name) or set()
        return [KafkaPartition(name, p) for p in sorted(partitions)]

    async def read(self, topic: str, limit: int = 1000) -> list[ConsumedRecord]:
        reader = self._new_consumer(None)
        await reader.start()
        try:
            partitions = await self._partitions(topic)
            reader.assign(partitions)
            ends = await reader.end_offsets(partitions)
            await reader.seek_to_beginning(*partitions)
            records: list[ConsumedRecord] = []
            remaining = {tp for tp in partitions if ends[tp] > 0}
            for tp in partitions:
                if tp not in remaining:
                    continue
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            while remaining and len(records) < limit:
                batch = await reader.getmany(*remaining, timeout_ms=1000)
                for tp, messages in batch.items():
                    for message in messages:
                        if message.offset < ends[tp]:
                            records.append(self._consumed(message))
                    if messages and messages[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            records.sort(key=lambda r: (r.partition, r.offset))
            return records[:limit]
        finally:
            await reader.stop()

    async def end_offsets(self, topic: str) -> dict[int, int]:
        reader = self._new_consumer(None)
        await reader.start()
        try:
            partitions = await self._partitions(topic)
            ends = await reader.end_offsets(partitions)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await reader.stop()

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        offsets = await self._admin.list_consumer_group_offsets(self._name(group))
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if tp.topic == self._name(topic) and meta.offset >= 0
        }

    def _consumed(self, message: Any) -> ConsumedRecord:
        key = message.key
        return ConsumedRecord(
            topic=message.topic.removeprefix(self._namespace),
            partition=message.partition,
            offset=message.offset,
            key=key.decode() if isinstance(key, bytes) else "",
            value=message.value,
            headers=tuple(message.headers or ()),
        )

    def _partition(self, tp: TopicPartition) -> KafkaPartition:
        return KafkaPartition(self._name(tp.topic), tp.partition)

    def _ours(self, tp: KafkaPartition) -> TopicPartition:
        return TopicPartition(tp.topic.removeprefix(self._namespace), tp.partition)


class _KafkaConsumer:
    def __init__(self, log: KafkaLog, group: str, topics: tuple[str, ...]) -> None:
        self._log = log
        self._group = group
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        async with self._starting:
            return await self._start_once()

    async def _start_once(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            await self._log.create_topics(self._topics, self._log._default_partitions)
            consumer = self._log._new_consumer(
                self._group,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                max_poll_interval_ms=300_000,
                metadata_max_age_ms=30_000,
            )
            consumer.subscribe([self._log._name(topic) for topic in self._topics])
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        consumer = await self._started()
        batch = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [self._log._consumed(m) for messages in batch.values() for m in messages]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        consumer = await self._started()
        owned = consumer.assignment()
        mine = {
            self._log._partition(tp): offset
            for tp, offset in offsets.items()
            if self._log._partition(tp) in owned
        }
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            # The group rebalanced under us: the new owner starts from the last commit and the
            # inbox makes the redelivery harmless.
            logger.info("%s: commit skipped after a rebalance: %r", self._group, error)

    async def lag(self) -> dict[TopicPartition, int]:
        """Raises `TimeoutError` after the log's request timeout: with the cluster away the
        consumer would wait for a group coordinator for as long as it takes, and `/healthz`
        and `/metrics` with it."""
        consumer = await self._started()
        partitions = sorted(consumer.assignment())
        if not partitions:
            return {}
        async with asyncio.timeout(self._log._request_timeout_ms / 1000):
            ends = await consumer.end_offsets(partitions)
            lag: dict[TopicPartition, int] = {}
            for tp in partitions:
                committed = await consumer.committed(tp)
                lag[self._log._ours(tp)] = ends[tp] - (committed or 0)
        return lag

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
