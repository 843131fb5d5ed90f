"""Transactional outbox: events are rows written in the same transaction as the state change,
and a relay copies them to the log in batches, in commit order, then marks them sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.envelope import Envelope, utcnow
from agora.messaging.metrics import MessagingMetrics
from agora.messaging.ports import MessageLog, Record
from agora.messaging.sql import Database, UtcDateTime

__all__ = ["OutboxRelay", "add_outbox_table", "outbox_backlog", "write_outbox"]


def add_outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String, nullable=False),
        Column("key", String, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
    )
    Index(
        "ix_outbox_unpublished",
        table.c.id,
        sqlite_where=table.c.published_at.is_(None),
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


async def write_outbox(
    conn: AsyncConnection, table: Table, events: Sequence[tuple[str, Envelope]]
) -> None:
    """Write `events` (topic, envelope) in the caller's transaction."""
    now = utcnow()
    await conn.execute(
        table.insert(),
        [
            {
                "event_id": envelope.id,
                "topic": topic,
                "key": envelope.key,
                "value": envelope.to_bytes(),
                "created_at": now,
            }
            for topic, envelope in events
        ],
    )


async def outbox_backlog(conn: AsyncConnection, table: Table) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(table).where(table.c.published_at.is_(None))
    )
    return int(count or 0)


class OutboxRelay:
    """Publishes a service's outbox to the log.

    Rows go out in id order, which is commit order for one writer, so the events of one key keep
    their order. A crash between publish and mark publishes a batch again: consumers' inboxes
    make that harmless (at least once on the wire, exactly once in effect).
    """

    def __init__(
        self,
        service: str,
        db: Database,
        table: Table,
        log: MessageLog,
        metrics: MessagingMetrics,
        *,
        batch_size: int = 500,
        keep_sent: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self.service = service
        self._db = db
        self._table = table
        self._log = log
        self._metrics = metrics
        self._batch_size = batch_size
        self._keep_sent = keep_sent
        self._last_prune = utcnow()

    async def step(self) -> float | None:
        """Publish one batch; 0 when more is waiting, None when the outbox is empty."""
        table = self._table
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(table.c.id, table.c.topic, table.c.key, table.c.value)
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self._batch_size)
                )
            ).all()
        if not rows:
            self._metrics.outbox_backlog.labels(self.service).set(0)
            await self._prune()
            return None
        await self._log.publish([Record(topic, key, value) for _, topic, key, value in rows])
        async with self._db.write() as conn:
            await conn.execute(
                update(table)
                .where(table.c.id.in_([row.id for row in rows]))
                .values(published_at=utcnow())
            )
        self._metrics.outbox_published.labels(self.service).inc(len(rows))
        return 0 if len(rows) == self._batch_size else None

    async def _prune(self) -> None:
        now = utcnow()
        if now - self._last_prune < self._keep_sent:
            return
        self._last_prune = now
        async with self._db.write() as conn:
            await conn.execute(
                delete(self._table).where(self._table.c.published_at < now - self._keep_sent)
            )
