"""Dead letters: list them, and deliver them again to the topic they came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from agora.messaging.ports import ConsumedRecord, MessageLog, Record, TopicPartition
from agora.messaging.runner import dead_letter_topic

__all__ = ["DeadLetter", "list_dead_letters", "replay_dead_letters"]

REPLAY_GROUP = "agora.dead-letter-replay"


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str
    group: str
    error: str
    attempts: int
    failed_at: str
    replayed: bool
    value: bytes

    @property
    def original_topic(self) -> str:
        return self.topic.removesuffix(".dlt")


async def list_dead_letters(
    log: MessageLog, topics: Sequence[str], limit: int = 1000
) -> list[DeadLetter]:
    """Dead letters of `topics` (the original topics' names), oldest first per partition."""
    letters: list[DeadLetter] = []
    for topic in topics:
        dlt = dead_letter_topic(topic)
        replayed_up_to = await log.committed(REPLAY_GROUP, dlt)
        for record in await log.read(dlt, limit):
            letters.append(_letter(record, record.offset < replayed_up_to.get(record.partition, 0)))
    return letters


async def replay_dead_letters(log: MessageLog, topics: Sequence[str]) -> int:
    """Publish every dead letter not yet replayed back to its original topic; returns how many.

    Every group of that topic sees the event again; those that applied it already skip it (inbox).
    """
    replayed = 0
    for topic in topics:
        dlt = dead_letter_topic(topic)
        consumer = log.consumer(REPLAY_GROUP, [dlt])
        try:
            while records := await consumer.fetch(500, timeout=0.2):
                await log.publish(
                    [
                        Record(topic, r.key, r.value, (("x-replayed-from", dlt.encode()),))
                        for r in records
                    ]
                )
                offsets: dict[TopicPartition, int] = {}
                for r in records:
                    offsets[r.topic_partition] = r.offset + 1
                await consumer.commit(offsets)
                replayed += len(records)
        finally:
            await consumer.close()
    return replayed


def _letter(record: ConsumedRecord, replayed: bool) -> DeadLetter:
    def text(name: str) -> str:
        value = record.header(name)
        return value.decode() if value is not None else ""

    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        group=text("x-group"),
        error=text("x-error"),
        attempts=int(text("x-attempts") or 0),
        failed_at=text("x-failed-at"),
        replayed=replayed,
        value=record.value,
    )
