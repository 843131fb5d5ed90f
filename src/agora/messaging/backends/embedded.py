"""The embedded log: Kafka's semantics (topics, partitions, offsets, consumer groups) in one
SQLite file, for one process.

Appends and offset commits are transactions, so the log survives a killed process. Group
membership lives in memory: members are tasks of the process that opened the log.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.ports import ConsumedRecord, Consumer, Record, TopicPartition
from agora.messaging.sql import Database, sqlite_url

__all__ = ["EmbeddedLog"]

metadata = MetaData()

topics_table = Table(
    "log_topics",
    metadata,
    Column("name", String, primary_key=True),
    Column("partitions", Integer, nullable=False),
)

partitions_table = Table(
    "log_partitions",
    metadata,
    Column("topic", String, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    PrimaryKeyConstraint("topic", "partition"),
)

records_table = Table(
    "log_records",
    metadata,
    Column("topic", String, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", String, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", LargeBinary, nullable=True),
    PrimaryKeyConstraint("topic", "partition", "offset"),
    sqlite_with_rowid=False,
)

group_offsets_table = Table(
    "log_group_offsets",
    metadata,
    Column("group_id", String, nullable=False),
    Column("topic", String, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    PrimaryKeyConstraint("group_id", "topic", "partition"),
)


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and runs (Python's hash() is not)."""
    return zlib.crc32(key.encode()) % partitions


class EmbeddedLog:
    def __init__(self, path: Path, *, default_partitions: int = 8, poll_interval: float = 0.5):
        self._db = Database(sqlite_url(path), metadata)
        self._default_partitions = default_partitions
        # Appends by another process (the CLI replaying dead letters) are seen within this time.
        self._poll_interval = poll_interval
        self._partitions: dict[str, int] = {}
        # End offsets as this process last saw them, so that idle members need no query; a
        # member that waited a whole poll interval reads them afresh from the file.
        self._ends: dict[TopicPartition, int] = {}
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._groups: dict[str, _Group] = {}
        self._member_ids = itertools.count(1)

    async def open(self) -> None:
        await self._db.create_tables()
        async with self._db.read() as conn:
            rows = await conn.execute(select(topics_table.c.name, topics_table.c.partitions))
            self._partitions.update(dict(rows.all()))
            ends = await conn.execute(
                select(
                    partitions_table.c.topic,
                    partitions_table.c.partition,
                    partitions_table.c.next_offset,
                )
            )
            self._ends.update({TopicPartition(t, p): o for t, p, o in ends})

    async def close(self) -> None:
        await self._db.dispose()

    async def create_topics(self, topics: Sequence[str], partitions: int) -> None:
        missing = [topic for topic in topics if topic not in self._partitions]
        if missing:
            async with self._db.write() as conn:
                await self._create_missing(conn, missing, partitions)

    async def _create_missing(
        self, conn: AsyncConnection, topics: Sequence[str], partitions: int
    ) -> None:
        rows = await conn.execute(
            select(topics_table.c.name, topics_table.c.partitions).where(
                topics_table.c.name.in_(topics)
            )
        )
        known = dict(rows.all())
        new = [topic for topic in topics if topic not in known]
        if new:
            await conn.execute(
                topics_table.insert(), [{"name": t, "partitions": partitions} for t in new]
            )
            await conn.execute(
                partitions_table.insert(),
                [
                    {"topic": t, "partition": p, "next_offset": 0}
                    for t in new
                    for p in range(partitions)
                ],
            )
        self._partitions.update(known)
        self._partitions.update(dict.fromkeys(new, partitions))

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        async with self._db.write() as conn:
            unknown = sorted({r.topic for r in records} - self._partitions.keys())
            if unknown:
                await self._create_missing(conn, unknown, self._default_partitions)
            by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
            for record in records:
                partition = partition_for(record.key, self._partitions[record.topic])
                by_partition[(record.topic, partition)].append(record)
            keys = list(by_partition)
            rows = await conn.execute(
                select(
                    partitions_table.c.topic,
                    partitions_table.c.partition,
                    partitions_table.c.next_offset,
                ).where(tuple_(partitions_table.c.topic, partitions_table.c.partition).in_(keys))
            )
            next_offsets = {(topic, partition): offset for topic, partition, offset in rows}
            inserts = []
            updates = []
            ends: dict[TopicPartition, int] = {}
            for (topic, partition), batch in by_partition.items():
                offset = next_offsets[(topic, partition)]
                for record in batch:
                    inserts.append(
                        {
                            "topic": topic,
                            "partition": partition,
                            "offset": offset,
                            "key": record.key,
                            "value": record.value,
                            "headers": _encode_headers(record.headers),
                        }
                    )
                    offset += 1
                updates.append({"t": topic, "p": partition, "o": offset})
                ends[TopicPartition(topic, partition)] = offset
            await conn.execute(records_table.insert(), inserts)
            await conn.execute(
                partitions_table.update()
                .where(
                    and_(
                        partitions_table.c.topic == bindparam("t"),
                        partitions_table.c.partition == bindparam("p"),
                    )
                )
                .values(next_offset=bindparam("o")),
                updates,
            )
        for tp, offset in ends.items():
            self._ends[tp] = max(self._ends.get(tp, 0), offset)
        for topic in {tp.topic for tp in ends}:
            for waiter in self._waiters[topic]:
                waiter.set()

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        members = self._groups.setdefault(group, _Group())
        return _EmbeddedConsumer(self, members, group, tuple(topics), next(self._member_ids))

    async def read(self, topic: str, limit: int = 1000) -> list[ConsumedRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(records_table)
                .where(records_table.c.topic == topic)
                .order_by(records_table.c.partition, records_table.c.offset)
                .limit(limit)
            )
            return [_consumed(row) for row in rows]

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await self._ensure_topics([topic])
        ends = await self._end_offsets(self._topic_partitions([topic]))
        return {tp.partition: offset for tp, offset in ends.items()}

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(group_offsets_table.c.partition, group_offsets_table.c.offset).where(
                    group_offsets_table.c.group_id == group, group_offsets_table.c.topic == topic
                )
            )
            return dict(rows.all())

    # -- used by members ---------------------------------------------------------------

    async def _ensure_topics(self, topics: Sequence[str]) -> None:
        await self.create_topics(topics, self._default_partitions)

    def _topic_partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        return [
            TopicPartition(topic, partition)
            for topic in sorted(topics)
            for partition in range(self._partitions[topic])
        ]

    async def _committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    group_offsets_table.c.topic,
                    group_offsets_table.c.partition,
                    group_offsets_table.c.offset,
                ).where(
                    group_offsets_table.c.group_id == group,
                    tuple_(group_offsets_table.c.topic, group_offsets_table.c.partition).in_(
                        [(tp.topic, tp.partition) for tp in partitions]
                    ),
                )
            )
            found = {TopicPartition(t, p): o for t, p, o in rows}
        return {tp: found.get(tp, 0) for tp in partitions}

    async def _end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(
                    partitions_table.c.topic,
                    partitions_table.c.partition,
                    partitions_table.c.next_offset,
                ).where(
                    tuple_(partitions_table.c.topic, partitions_table.c.partition).in_(
                        [(tp.topic, tp.partition) for tp in partitions]
                    )
                )
            )
            return {TopicPartition(t, p): o for t, p, o in rows}

    async def _read_from(
        self, positions: Mapping[TopicPartition, int], limit: int
    ) -> list[ConsumedRecord]:
        conditions = [
            and_(
                records_table.c.topic == tp.topic,
                records_table.c.partition == tp.partition,
                records_table.c.offset >= offset,
            )
            for tp, offset in positions.items()
        ]
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(records_table)
                .where(or_(*conditions))
                .order_by(records_table.c.offset, records_table.c.partition)
                .limit(limit)
            )
            return [_consumed(row) for row in rows]

    async def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        statement = sqlite_insert(group_offsets_table)
        statement = statement.on_conflict_do_update(
            index_elements=["group_id", "topic", "partition"],
            set_={"offset": statement.excluded.offset},
        )
        async with self._db.write() as conn:
            await conn.execute(
                statement,
                [
                    {"group_id": group, "topic": tp.topic, "partition": tp.partition, "offset": o}
                    for tp, o in offsets.items()
                ],
            )

    async def _wait_for_append(
        self, topics: Sequence[str], waiter: asyncio.Event, timeout: float
    ) -> bool:
        """Wait until this process appends to one of `topics`; False after a poll interval
        without (another process may have appended: the caller refreshes the ends)."""
        for topic in topics:
            self._waiters[topic].add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), min(timeout, self._poll_interval))
        except TimeoutError:
            return False
        finally:
            for topic in topics:
                self._waiters[topic].discard(waiter)
        return True

    async def _refresh_ends(self, partitions: Sequence[TopicPartition]) -> None:
        for tp, offset in (await self._end_offsets(partitions)).items():
            self._ends[tp] = max(self._ends.get(tp, 0), offset)


class _Group:
    """Members of one group, in join order; `generation` changes whenever membership does."""

    def __init__(self) -> None:
        self.members: list[int] = []
        self.generation = 0

    def join(self, member: int) -> None:
        self.members.append(member)
        self.generation += 1

    def leave(self, member: int) -> None:
        if member in self.members:
            self.members.remove(member)
            self.generation += 1

    def assignment(self, member: int, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        """Round-robin over the sorted partitions, as Kafka's RoundRobinAssignor does."""
        index = self.members.index(member)
        return [tp for i, tp in enumerate(partitions) if i % len(self.members) == index]


class _EmbeddedConsumer:
    def __init__(
        self, log: EmbeddedLog, group: _Group, group_id: str, topics: tuple[str, ...], member: int
    ) -> None:
        self._log = log
        self._group = group
        self._group_id = group_id
        self._topics = topics
        self._member = member
        self._generation = -1
        self._positions: dict[TopicPartition, int] = {}
        self._joined = False
        self._appended = asyncio.Event()

    async def _sync_assignment(self) -> None:
        if not self._joined:
            await self._log._ensure_topics(self._topics)
            self._group.join(self._member)
            self._joined = True
        if self._generation == self._group.generation:
            return
        generation = self._group.generation
        partitions = self._group.assignment(self._member, self._log._topic_partitions(self._topics))
        positions = await self._log._committed_offsets(self._group_id, partitions)
        if generation == self._group.generation:
            self._positions = positions
            self._generation = generation

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._appended.clear()
            await self._sync_assignment()
            if self._positions:
                ends = self._log._ends
                ready = {tp: o for tp, o in self._positions.items() if ends.get(tp, 0) > o}
                if ready:
                    records = await self._log._read_from(ready, max_records)
                    if self._generation == self._group.generation:
                        records = self._in_order(records)
                        for record in records:
                            self._positions[record.topic_partition] = record.offset + 1
                        return records
                    continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if not await self._log._wait_for_append(self._topics, self._appended, remaining):
                await self._log._refresh_ends(list(self._positions))

    def _in_order(self, records: list[ConsumedRecord]) -> list[ConsumedRecord]:
        # A batch holds, per partition, a run of consecutive offsets from the position on.
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        kept: list[ConsumedRecord] = []
        expected = dict(self._positions)
        for record in records:
            if expected.get(record.topic_partition) == record.offset:
                kept.append(record)
                expected[record.topic_partition] = record.offset + 1
        return kept

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        owned = {tp: o for tp, o in offsets.items() if tp in self._positions}
        if owned and self._generation == self._group.generation:
            await self._log._commit(self._group_id, owned)

    async def lag(self) -> dict[TopicPartition, int]:
        await self._sync_assignment()
        partitions = list(self._positions)
        ends = await self._log._end_offsets(partitions)
        committed = await self._log._committed_offsets(self._group_id, partitions)
        return {tp: ends.get(tp, 0) - committed[tp] for tp in partitions}

    async def close(self) -> None:
        if self._joined:
            self._group.leave(self._member)
            self._joined = False
        self._positions = {}


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    if not headers:
        return None
    return orjson.dumps([[key, value.decode("utf-8", "replace")] for key, value in headers])


def _decode_headers(data: bytes | None) -> tuple[tuple[str, bytes], ...]:
    if not data:
        return ()
    return tuple((key, value.encode()) for key, value in orjson.loads(data))


def _consumed(row: Row[Any]) -> ConsumedRecord:
    mapping = row._mapping
    return ConsumedRecord(
        topic=mapping["topic"],
        partition=mapping["partition"],
        offset=mapping["offset"],
        key=mapping["key"],
        value=mapping["value"],
        headers=_decode_headers(mapping["headers"]),
    )
