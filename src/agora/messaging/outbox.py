"""Transactional outbox: events are rows written in the same transaction as the state change,
and a relay copies them to the log in batches, in commit order, then marks them sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging.envelope import Envelope, utcnow
from agora.messaging.metrics import MessagingMetrics
from agora.messaging.ports import MessageLog, Record
from agora.messaging.sql import Database, UtcDateTime

__all__ = [
    "OutboxRelay",
    "add_outbox_table",
    "outbox_backlog",
    "outbox_channel",
    "write_outbox",
]


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


def outbox_channel(service: str) -> str:
    """The PostgreSQL NOTIFY channel that wakes `service`'s relays in every process."""
    return f"agora_outbox_{service}"


async def write_outbox(
    conn: AsyncConnection, table: Table, events: Sequence[tuple[str, Envelope]]
) -> None:
    """Write `events` (topic, envelope) in the caller's transaction. Waking the relays is the
    caller's part: the unit of work notifies `outbox_channel` as it commits."""
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
        batches_per_step: int = 8,
        keep_sent: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self.service = service
        self._db = db
        self._table = table
        self._log = log
        self._metrics = metrics
        self._batch_size = batch_size
        self._batches_per_step = batches_per_step
        self._keep_sent = keep_sent
        self._last_prune = utcnow()
        self._lease = zlib.crc32(f"agora-outbox-relay:{service}".encode())
        # built once: SQLAlchemy finds them in its compiled cache without hashing a new
        # expression per batch
        self._select_pending = (
            select(table.c.id, table.c.topic, table.c.key, table.c.value)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(batch_size)
        )
        ids = bindparam("ids", type_=postgresql.ARRAY(BigInteger))
        self._mark = {
            # one array parameter, not one bound parameter per row
            "postgresql": update(table).where(table.c.id == any_(ids)),
            "sqlite": update(table).where(table.c.id.in_(bindparam("ids", expanding=True))),
        }
        self._try_lease = select(func.pg_try_advisory_xact_lock(self._lease))

    async def start(self, wake: Callable[[], None]) -> None:
        """Be woken by commits of other processes too (PostgreSQL)."""
        await self._db.listen(outbox_channel(self.service), lambda _payload: wake(), missed=wake)

    async def step(self) -> float | None:
        """Publish what is waiting, up to `batches_per_step` batches; 0 when more is waiting,
        None when the outbox is empty."""
        if self._db.is_sqlite:
            # One process owns a SQLite database: no other relay to keep out, and the write
            # lock is not held while publishing.
            async with self._db.read() as conn:
                rows = await self._pending(conn)
            if rows:
                await self._publish(rows)
                async with self._db.write() as conn:
                    await self._mark_sent(conn, rows)
            full = len(rows) == self._batch_size
        else:
            async with self._db.write() as conn:
                # One relay per service at a time, whatever the replicas: the others skip this
                # round. It keeps each key's events in commit order across processes.
                if not await conn.scalar(self._try_lease):
                    return None
                rows, full = await self._relay_batches(conn)
        if not rows:
            self._metrics.outbox_backlog.labels(self.service).set(0)
            await self._prune()
            return None
        return 0 if full else None

    async def _relay_batches(
        self, conn: AsyncConnection
    ) -> tuple[Sequence[Row[Any, Any, Any, Any]], bool]:
        """Publish batch after batch in the caller's transaction, each batch's publish
        overlapping the marking of it and the reading of the next (the transaction sees its own
        marks, so the next read starts after them). Nothing is committed until every publish
        is acknowledged: a failure rolls the marks back and the rows go out again."""
        rows = await self._pending(conn)
        first = rows
        for _ in range(self._batches_per_step):
            if not rows:
                break
            publishing = asyncio.create_task(self._publish(rows))
            try:
                await self._mark_sent(conn, rows)
                following = await self._pending(conn) if len(rows) == self._batch_size else []
            finally:
                await publishing  # its error wins; with none, a database error goes on up
            if len(rows) < self._batch_size:
                return first, False
            rows = following
        return first, bool(rows)

    async def _pending(self, conn: AsyncConnection) -> Sequence[Row[Any, Any, Any, Any]]:
        return (await conn.execute(self._select_pending)).all()

    async def _publish(self, rows: Sequence[Row[Any, Any, Any, Any]]) -> None:
        await self._log.publish([Record(row.topic, row.key, row.value) for row in rows])
        self._metrics.outbox_published.labels(self.service).inc(len(rows))

    async def _mark_sent(
        self, conn: AsyncConnection, rows: Sequence[Row[Any, Any, Any, Any]]
    ) -> None:
        await conn.execute(
            self._mark[conn.dialect.name],
            {"ids": [row.id for row in rows], "published_at": utcnow()},
        )

    async def _prune(self) -> None:
        now = utcnow()
        if now - self._last_prune < self._keep_sent:
            return
        self._last_prune = now
        async with self._db.write() as conn:
            await conn.execute(
                delete(self._table).where(self._table.c.published_at < now - self._keep_sent)
            )
