"""The event platform's invariants, read-only: every outbox row published within a bound, and
no consumer group lagging beyond one (`agora check`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.ports import MessageLog

__all__ = ["GroupLag", "OverdueOutbox", "consumer_lag", "overdue_outbox"]


@dataclasses.dataclass(frozen=True, slots=True)
class OverdueOutbox:
    """Outbox rows still unpublished that were written before the bound: how many, and the
    event ids of the oldest."""

    count: int
    oldest: tuple[str, ...]


async def overdue_outbox(
    conn: AsyncConnection, table: Table, written_before: dt.datetime, *, shown: int
) -> OverdueOutbox:
    overdue = table.c.published_at.is_(None) & (table.c.created_at < written_before)
    count = await conn.scalar(select(func.count()).select_from(table).where(overdue))
    oldest = await conn.scalars(
        select(table.c.event_id).where(overdue).order_by(table.c.id).limit(shown)
    )
    return OverdueOutbox(int(count or 0), tuple(oldest))


@dataclasses.dataclass(frozen=True, slots=True)
class GroupLag:
    """Records of `topic` that `group` has not committed yet, over all its partitions."""

    group: str
    topic: str
    records: int


async def consumer_lag(
    log: MessageLog, groups: Sequence[str], topics: Sequence[str]
) -> list[GroupLag]:
    """The lag of each group on each topic it has committed on. A partition the group never
    committed on counts from its start: records a member has not reached yet are lag too."""
    ends = {topic: await log.end_offsets(topic) for topic in topics}
    lags = []
    for group in groups:
        for topic in topics:
            committed = await log.committed(group, topic)
            if not committed:
                continue  # the group does not read this topic
            behind = sum(end - committed.get(p, 0) for p, end in ends[topic].items())
            lags.append(GroupLag(group, topic, max(0, behind)))
    return lags
