"""Dead letters: list them, and deliver them again to the topic they came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from agora.messaging.ports import ConsumedRecord, MessageLog, Record
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

    The event goes back addressed to the consumer group that failed it (header `x-replay-for`):
    other groups of the topic pass over it, so a replay never fans out into new dead letters.
    """
    replayed = 0
    for topic in topics:
        dlt = dead_letter_topic(topic)
        # Replays may fail again and land in this topic while we read it: stop at today's end.
        ends = await log.end_offsets(dlt)
        consumer = log.consumer(REPLAY_GROUP, [dlt])
        try:
            while records := await consumer.fetch(500, timeout=0.2):
                due = [r for r in records if r.offset < ends.get(r.partition, 0)]
                await log.publish([_replay(topic, dlt, r) for r in due])
                await consumer.commit({r.topic_partition: r.offset + 1 for r in due})
                replayed += len(due)
                if not due:
                    break
        finally:
            await consumer.close()
    return replayed


def _replay(topic: str, dlt: str, record: ConsumedRecord) -> Record:
    headers = [("x-replayed-from", dlt.encode())]
    group = record.header("x-group")
    if group is not None:
        headers.append(("x-replay-for", group))
    return Record(topic, record.key, record.value, tuple(headers))


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
