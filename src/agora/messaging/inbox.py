"""Inbox: which events a consumer group has applied, recorded in the transaction of the effects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.envelope import utcnow
from agora.messaging.sql import UtcDateTime

__all__ = ["add_inbox_table", "claim_inbox"]


def add_inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer_group", String, nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("received_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("consumer_group", "event_id"),
    )


async def claim_inbox(
    conn: AsyncConnection, table: Table, group: str, event_ids: Sequence[str]
) -> set[str]:
    """Record `event_ids` for `group` and return those not seen before.

    Must run in the transaction that applies the events' effects, and that transaction must hold
    the write lock (SQLite) or meet the primary key (PostgreSQL) so two claims cannot both win.
    """
    if not event_ids:
        return set()
    seen = set(
        (
            await conn.execute(
                select(table.c.event_id).where(
                    table.c.consumer_group == group, table.c.event_id.in_(event_ids)
                )
            )
        ).scalars()
    )
    fresh = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in seen]
    if fresh:
        now = utcnow()
        await conn.execute(
            table.insert(),
            [{"consumer_group": group, "event_id": e, "received_at": now} for e in fresh],
        )
    return set(fresh)
