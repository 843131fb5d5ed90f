"""The embedded log: Kafka's semantics (topics, partitions, offsets, consumer groups) in one
SQLite file, for one process.

Appends and offset commits are transactions, so the log survives a killed process. Group
membership lives in memory: members are tasks of the process that opened the log.

The log is a storage engine of its own, on the hot path of every event: it speaks to SQLite
through the standard library's driver, inline on the event loop (as `sqlite_inline` does for
the services' databases), with fixed SQL that the driver keeps prepared. Each operation runs
start to end without awaiting, so on one event loop no two of them interleave; another
process (the CLI replaying dead letters) is waited for by SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import orjson

from agora.messaging.ports import ConsumedRecord, Consumer, Record, TopicPartition
from agora.messaging.sqlite_inline import open_sqlite

__all__ = ["EmbeddedLog"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log_topics (
        name VARCHAR NOT NULL,
        partitions INTEGER NOT NULL,
        PRIMARY KEY (name)
    )""",
    """CREATE TABLE IF NOT EXISTS log_partitions (
        topic VARCHAR NOT NULL,
        partition INTEGER NOT NULL,
        next_offset BIGINT NOT NULL,
        PRIMARY KEY (topic, partition)
    )""",
    """CREATE TABLE IF NOT EXISTS log_records (
        topic VARCHAR NOT NULL,
        partition INTEGER NOT NULL,
        "offset" BIGINT NOT NULL,
        "key" VARCHAR NOT NULL,
        value BLOB NOT NULL,
        headers BLOB,
        PRIMARY KEY (topic, partition, "offset")
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS log_group_offsets (
        group_id VARCHAR NOT NULL,
        topic VARCHAR NOT NULL,
        partition INTEGER NOT NULL,
        "offset" BIGINT NOT NULL,
        PRIMARY KEY (group_id, topic, partition)
    )""",
)

TOPIC_PARTITIONS = "SELECT partitions FROM log_topics WHERE name = ?"
RECORD_COLUMNS = 'topic, partition, "offset", "key", value, headers'
INSERT_RECORD = f"INSERT INTO log_records ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
# Claims `?` offsets of a partition and answers the new end: the claimed run ends before it.
ADVANCE_END = (
    "UPDATE log_partitions SET next_offset = next_offset + ? "
    "WHERE topic = ? AND partition = ? RETURNING next_offset"
)
COMMIT_OFFSET = (
    'INSERT INTO log_group_offsets (group_id, topic, partition, "offset") VALUES (?, ?, ?, ?) '
    'ON CONFLICT (group_id, topic, partition) DO UPDATE SET "offset" = excluded."offset"'
)
# One run of offsets per partition; the SQL depends only on how many partitions are read, so
# the driver's statement cache holds a handful of shapes.
FROM_POSITION = '(topic = ? AND partition = ? AND "offset" >= ?)'


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and runs (Python's hash() is not)."""
    return zlib.crc32(key.encode()) % partitions


class EmbeddedLog:
    def __init__(self, path: Path, *, default_partitions: int = 8, poll_interval: float = 0.5):
        self._path = path
        self._connection: sqlite3.Connection | None = None
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

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the embedded log is not open")
        return self._connection

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, holding SQLite's write lock from its first statement on."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # some errors end the transaction themselves
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def open(self) -> None:
        self._connection = open_sqlite(self._path)
        with self._writing() as db:
            for statement in SCHEMA:
                db.execute(statement)
            self._partitions.update(db.execute("SELECT name, partitions FROM log_topics"))
            ends = db.execute("SELECT topic, partition, next_offset FROM log_partitions")
            self._ends.update({TopicPartition(t, p): o for t, p, o in ends})

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_topics(self, topics: Sequence[str], partitions: int) -> None:
        missing = [topic for topic in topics if topic not in self._partitions]
        if missing:
            with self._writing() as db:
                self._create_missing(db, missing, partitions)

    def _create_missing(
        self, db: sqlite3.Connection, topics: Sequence[str], partitions: int
    ) -> None:
        known: dict[str, int] = {}
        for topic in topics:  # another process may have created some meanwhile
            row = db.execute(TOPIC_PARTITIONS, (topic,)).fetchone()
            if row is not None:
                known[topic] = row[0]
        new = [topic for topic in topics if topic not in known]
        db.executemany(
            "INSERT INTO log_topics (name, partitions) VALUES (?, ?)",
            [(topic, partitions) for topic in new],
        )
        db.executemany(
            "INSERT INTO log_partitions (topic, partition, next_offset) VALUES (?, ?, 0)",
            [(topic, partition) for topic in new for partition in range(partitions)],
        )
        self._partitions.update(known)
        self._partitions.update(dict.fromkeys(new, partitions))

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        ends: dict[TopicPartition, int] = {}
        with self._writing() as db:
            unknown = sorted({r.topic for r in records} - self._partitions.keys())
            if unknown:
                self._create_missing(db, unknown, self._default_partitions)
            by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
            for record in records:
                partition = partition_for(record.key, self._partitions[record.topic])
                by_partition[TopicPartition(record.topic, partition)].append(record)
            rows: list[RecordRow] = []
            for tp, batch in by_partition.items():
                (end,) = db.execute(ADVANCE_END, (len(batch), tp.topic, tp.partition)).fetchone()
                rows.extend(
                    (tp.topic, tp.partition, offset, r.key, r.value, _encode_headers(r.headers))
                    for offset, r in enumerate(batch, start=end - len(batch))
                )
                ends[tp] = end
            db.executemany(INSERT_RECORD, rows)
        for tp, offset in ends.items():
            self._ends[tp] = max(self._ends.get(tp, 0), offset)
        for topic in {tp.topic for tp in ends}:
            for waiter in self._waiters[topic]:
                waiter.set()

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        members = self._groups.setdefault(group, _Group())
        return _EmbeddedConsumer(self, members, group, tuple(topics), next(self._member_ids))

    async def read(self, topic: str, limit: int = 1000) -> list[ConsumedRecord]:
        rows = self._db.execute(
            f"SELECT {RECORD_COLUMNS} FROM log_records WHERE topic = ? "
            'ORDER BY partition, "offset" LIMIT ?',
            (topic, limit),
        )
        return _consumed(rows)

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await self._ensure_topics([topic])
        ends = await self._end_offsets(self._topic_partitions([topic]))
        return {tp.partition: offset for tp, offset in ends.items()}

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            'SELECT partition, "offset" FROM log_group_offsets WHERE group_id = ? AND topic = ?',
            (group, topic),
        )
        return dict(rows.fetchall())

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
        rows = self._db.execute(
            'SELECT topic, partition, "offset" FROM log_group_offsets WHERE group_id = ?',
            (group,),
        )
        found = {TopicPartition(t, p): o for t, p, o in rows}
        return {tp: found.get(tp, 0) for tp in partitions}

    async def _end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = set(partitions)
        rows = self._db.execute("SELECT topic, partition, next_offset FROM log_partitions")
        return {tp: o for t, p, o in rows if (tp := TopicPartition(t, p)) in wanted}

    async def _read_from(
        self, positions: Mapping[TopicPartition, int], limit: int
    ) -> list[ConsumedRecord]:
        where = " OR ".join([FROM_POSITION] * len(positions))
        parameters: list[object] = []
        for tp, offset in positions.items():
            parameters += (tp.topic, tp.partition, offset)
        rows = self._db.execute(
            f"SELECT {RECORD_COLUMNS} FROM log_records WHERE {where} "
            'ORDER BY "offset", partition LIMIT ?',
            (*parameters, limit),
        )
        return _consumed(rows)

    async def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._writing() as db:
            db.executemany(
                COMMIT_OFFSET,
                [(group, tp.topic, tp.partition, offset) for tp, offset in offsets.items()],
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


RecordRow = tuple[str, int, int, str, bytes, bytes | None]


def _consumed(rows: Iterable[RecordRow]) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            headers=_decode_headers(headers),
        )
        for topic, partition, offset, key, value, headers in rows
    ]
