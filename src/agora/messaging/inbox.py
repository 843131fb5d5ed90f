"""Inbox: which events a consumer group has applied, recorded in the transaction of the effects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.envelope import utcnow
from agora.messaging.sql import UtcDateTime, insert_new

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

    One statement per batch: rows that exist already are skipped, and RETURNING names those
    inserted. Must run in the transaction that applies the events' effects, and that transaction
    must hold the write lock (SQLite) or meet the primary key (PostgreSQL) so two claims cannot
    both win.
    """
    if not event_ids:
        return set()
    now = utcnow()
    result = await conn.execute(
        insert_new(table, conn.dialect.name, returning=table.c.event_id),
        [
            {"consumer_group": group, "event_id": event_id, "received_at": now}
            for event_id in dict.fromkeys(event_ids)
        ],
    )
    return set(result.scalars())
