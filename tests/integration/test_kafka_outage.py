"""Calls to a Kafka cluster that has gone away fail within the request timeout, as transient
faults of the log, instead of waiting for the cluster to come back. A publish: the idempotent
producer retries a record forever, so without that bound the outbox relay would never learn of
the outage (readiness would stay 200 and the relay's transaction open); once the broker is
back, what was sent is delivered and the next publish goes through. A consumer's lag (for
/healthz and /metrics): the consumer waits for a group coordinator however long it takes. The
broker is the test's own (tests/own_kafka.py)."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError

from agora.messaging.backends.kafka import KafkaLog
from agora.messaging.faults import transient_fault
from agora.messaging.ports import Record
from own_kafka import OwnKafka, own_kafka

__all__ = ["own_kafka"]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REQUEST_TIMEOUT = 2.0

LAG_READS = 5
"""Without the bound, the first reads of the lag failed at once (no connection to the node) and
a later one waited the consumer's own request timeout (40 s)."""


def records(topic: str, label: str, count: int) -> list[Record]:
    return [Record(topic, f"key-{i}", f"{label}-{i}".encode()) for i in range(count)]


async def test_a_publish_to_a_killed_broker_fails_in_time_and_delivers_once_it_is_back(
    own_kafka: OwnKafka,
) -> None:
    log = KafkaLog(
        own_kafka.bootstrap,
        namespace=f"outage{uuid.uuid4().hex[:8]}.",
        request_timeout=REQUEST_TIMEOUT,
    )
    await log.open()
    try:
        topic = "orders"
        await log.publish(records(topic, "before", 4))
        own_kafka.kill()
        for attempt in ("sent while away", "tried again while away"):
            started = time.monotonic()
            with pytest.raises(KafkaTimeoutError) as failed:
                await log.publish(records(topic, "during", 4))
            waited = time.monotonic() - started
            assert REQUEST_TIMEOUT * 0.9 <= waited < REQUEST_TIMEOUT * 3, (attempt, waited)
            assert transient_fault(failed.value) == "log"
        own_kafka.start()
        await log.publish(records(topic, "after", 4))
        values = [record.value.decode() for record in await log.read(topic)]
        # The first try's records stayed with the producer and went out once the broker was
        # back; the second try waited for them and sent nothing: "during" arrives once.
        assert sorted(values) == sorted(
            [f"{label}-{i}" for label in ("before", "during", "after") for i in range(4)]
        ), values
    finally:
        await log.close()


async def test_a_consumers_lag_with_the_broker_killed_fails_in_time(own_kafka: OwnKafka) -> None:
    log = KafkaLog(
        own_kafka.bootstrap,
        namespace=f"lag{uuid.uuid4().hex[:8]}.",
        request_timeout=REQUEST_TIMEOUT,
    )
    await log.open()
    consumer = log.consumer("analytics", ["orders"])
    try:
        await log.publish(records("orders", "before", 4))
        fetched: list[object] = []
        while len(fetched) < 4:
            fetched += await consumer.fetch(100, timeout=1.0)
        assert sum((await consumer.lag()).values()) == 4
        own_kafka.kill()
        for _ in range(LAG_READS):  # as /healthz is polled
            started = time.monotonic()
            with pytest.raises((KafkaError, TimeoutError)) as failed:
                await consumer.lag()
            waited = time.monotonic() - started
            assert waited < REQUEST_TIMEOUT * 3, waited
            assert transient_fault(failed.value) == "log", failed.value
        own_kafka.start()
        assert sum((await consumer.lag()).values()) == 4
    finally:
        await consumer.close()
        await log.close()
