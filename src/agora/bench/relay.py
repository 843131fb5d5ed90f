"""Outbox relay throughput against the raw produce loop, on the same Kafka in the same run.

Writes `events` outbox rows to a PostgreSQL database of the run's own, then lets the relay
publish them (read a batch in id order, publish, mark sent) until the outbox is empty; then
publishes the same envelopes straight to Kafka in batches of the same size. The ratio is the
share of the broker's raw speed the outbox pattern keeps.
"""

from __future__ import annotations

import asyncio
import sys
import time

from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from agora import contracts
from agora.contracts.orders import OrderConfirmed
from agora.messaging import (
    Envelope,
    MessagingMetrics,
    Record,
    ServicePlatform,
    new_id,
    write_outbox,
)
from agora.messaging.backends.kafka import KafkaLog
from agora.runtime.supervisor import ensure_database


async def measure(events: int, batch_size: int) -> dict[str, object]:
    from agora.infra import ensure_up

    servers = ensure_up()
    env = servers.isolated_env("relay")
    url = env["AGORA_DATABASE_URL_TEMPLATE"].replace("{service}", "relaybench")
    await ensure_database(url)
    log = KafkaLog(servers.kafka_bootstrap, namespace=env["AGORA_KAFKA_NAMESPACE"])
    await log.open()
    platform = ServicePlatform(
        "relaybench",
        url,
        MetaData(),
        log,
        contracts.registry(),
        MessagingMetrics(CollectorRegistry()),
        relay_batch_size=batch_size,
    )
    try:
        await platform.db.create_tables()
        await log.create_topics([OrderConfirmed.topic], 8)
        envelopes = [
            Envelope.wrap(
                OrderConfirmed(
                    order_id=new_id(), customer_id="bench", total="10.00", currency="EUR"
                ),
                source="relaybench",
            )
            for _ in range(events)
        ]
        for start in range(0, events, 1000):
            async with platform.db.write() as conn:
                chunk = envelopes[start : start + 1000]
                await write_outbox(conn, platform.outbox, [("orders", e) for e in chunk])
        print(f"  {events} outbox rows written; relaying", file=sys.stderr)
        started = time.perf_counter()
        while await platform.relay.step() == 0:
            pass
        relay_seconds = time.perf_counter() - started
        assert await platform.outbox_backlog() == 0
        print(f"  relayed in {relay_seconds:.2f}s; raw produce loop", file=sys.stderr)
        records = [Record("orders", e.key, e.to_bytes()) for e in envelopes]
        started = time.perf_counter()
        for start in range(0, events, batch_size):
            await log.publish(records[start : start + batch_size])
        raw_seconds = time.perf_counter() - started
    finally:
        await platform.db.dispose()
        await log.close()
    relay_rate = events / relay_seconds
    raw_rate = events / raw_seconds
    return {
        "scenario": "relay",
        "backend": "servers",
        "events": events,
        "batch_size": batch_size,
        "relay_events_per_s": round(relay_rate),
        "raw_events_per_s": round(raw_rate),
        "ratio": round(relay_rate / raw_rate, 3),
    }


def bench_relay(*, events: int, batch_size: int) -> dict[str, object]:
    return asyncio.run(measure(events, batch_size))
