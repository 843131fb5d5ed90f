"""How analytics' handler changes its rows: the repository of one unit of work. Tests hold the
handler to it with an in-memory twin."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from agora.messaging import Envelope, UnitOfWork
from agora.services.analytics.store import saga_events

__all__ = ["AnalyticsUnitOfWork", "SagaEventsRepository"]


class SagaEventsRepository:
    """The events analytics has seen, as its handler records them, in the unit of work's
    transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(self, envelope: Envelope) -> None:
        """Record the event of `envelope` in its saga, with the customer its payload names
        (None if it names none). Called once per event: the consumer's inbox skips
        redeliveries."""
        await self._conn.execute(
            RECORD,
            {
                "event_id": envelope.id,
                "correlation_id": envelope.correlation_id,
                "causation_id": envelope.causation_id,
                "type": envelope.type,
                "source": envelope.source,
                "key": envelope.key,
                "occurred_at": envelope.occurred_at,
                "customer_id": envelope.payload.get("customer_id"),
            },
        )


class AnalyticsUnitOfWork(UnitOfWork):
    @property
    def saga_events(self) -> SagaEventsRepository:
        return SagaEventsRepository(self.conn)


RECORD = insert(saga_events)
