"""The bus port: a partitioned, durable, ordered log with consumer groups.

Two adapters implement it with the same semantics: `backends.embedded` (SQLite, one machine)
and `backends.kafka` (Apache Kafka). `tests/contract/bus_contract.py` holds them to this text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["ConsumedRecord", "Consumer", "MessageLog", "Record", "TopicPartition"]


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A message to append. `key` picks the partition: equal keys share one, in append order."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class Consumer(Protocol):
    """One member of a consumer group.

    Members of a group split the partitions of their topics between them; different groups each
    see every record. Within a partition records arrive in offset order. A record is delivered
    again to the group (at least once) until an offset past it is committed.
    """

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        """Up to `max_records` records after this member's position, waiting up to `timeout`
        seconds for the first one; [] when none came."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably record, for each partition, the offset of the next record to read.

        Partitions this member no longer owns (after a rebalance) are ignored."""
        ...

    async def lag(self) -> dict[TopicPartition, int]:
        """Records not yet committed, per assigned partition."""
        ...

    async def close(self) -> None:
        """Leave the group; its partitions go to the remaining members."""
        ...


class MessageLog(Protocol):
    async def open(self) -> None:
        """Connect (or open the file); before any other call."""
        ...

    async def create_topics(self, topics: Sequence[str], partitions: int) -> None:
        """Create topics that do not exist yet (existing ones are left as they are)."""
        ...

    async def publish(self, records: Sequence[Record]) -> None:
        """Append `records`, durably, before returning. Records with one key keep their order,
        within the call and across calls made one after another."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join `group` as a new member reading `topics`."""
        ...

    async def read(self, topic: str, limit: int = 1000) -> list[ConsumedRecord]:
        """Up to `limit` records of `topic` from the start of every partition, outside any group
        (for tools such as the dead-letter list)."""
        ...

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The offset the next record appended to each partition of `topic` will get."""
        ...

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The offsets `group` has committed for `topic`, by partition."""
        ...

    async def close(self) -> None: ...
