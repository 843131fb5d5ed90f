"""Analytics: the audit trail of every saga, from every topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert

from agora.messaging import Event, Handler, UnitOfWork
from agora.services.analytics.store import saga_events

RECORD = insert(saga_events)  # built once, not per event


async def record_event(event: Event, uow: UnitOfWork) -> None:
    envelope = uow.cause
    assert envelope is not None
    await uow.conn.execute(
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


def handlers_for(events: Iterable[type[Event]]) -> Mapping[type[Event], Handler[Any]]:
    return dict.fromkeys(events, record_event)
