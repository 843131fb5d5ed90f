"""The consumer runner, and a background loop, when a database goes away mid-work: they wait,
they do not dead-letter or give up. PostgreSQL is a server of the test's own (killed with
SIGKILL and started again); SQLite is locked by another connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from agora.messaging import (
    BackgroundLoop,
    Database,
    Envelope,
    MessageLog,
    MessagingMetrics,
    OutboxRelay,
    add_outbox_table,
    new_id,
    sqlite_inline,
    write_outbox,
)
from agora.messaging.backends.embedded import EmbeddedLog
from contract.bus_contract import Pinged, PingService, event_record, poll, running
from own_postgres import OwnPostgres, own_postgres
from small_disk import mounted

__all__ = ["own_postgres"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[MessageLog]:
    log = EmbeddedLog(tmp_path / "bus.db")
    await log.open()
    await log.create_topics([Pinged.topic], 2)
    yield log
    await log.close()


def dependency_up(registry: CollectorRegistry, service: PingService) -> float | None:
    labels = {"dependency": "database", "component": f"consumer {service.group}"}
    return registry.get_sample_value("agora_dependency_up", labels)


def state_changes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agora.messaging.faults"]


async def test_a_postgres_killed_mid_batch_pauses_the_runner_until_it_is_back(
    own_postgres: OwnPostgres, log: MessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    service = await PingService.create(own_postgres.url())
    gate = service.gate = asyncio.Event()
    events = [service.ping(f"order-{n}", n) for n in range(3)]
    await log.publish([event_record(event) for event in events])
    registry = CollectorRegistry()
    # Three attempts, milliseconds apart: a fault counted as attempts dead-letters in moments.
    runner = service.runner(log, attempts=3, metrics=registry)
    try:
        async with running(runner):
            await poll(lambda: asyncio.sleep(0, service.calls), bool, "a batch in a handler")
            own_postgres.kill()  # the batch's connection dies under it
            gate.set()
            await poll(
                lambda: asyncio.sleep(0, runner.health.healthy), lambda ok: not ok, "unhealthy"
            )
            assert dependency_up(registry, service) == 0
            assert list(runner.health.outages) == ["database"]
            await asyncio.to_thread(own_postgres.start)
            await service.wait_applied(*events)
            await poll(lambda: asyncio.sleep(0, runner.health.healthy), bool, "healthy again")
        assert dependency_up(registry, service) == 1
        assert await service.applied() == dict.fromkeys(events, 1)
        assert await service.dead_letters(log) == []
        changes = state_changes(caplog)
        assert len(changes) == 2, changes  # down once, up once: not a line per retry
        assert "database unavailable" in changes[0]
        assert "available again after" in changes[1]
    finally:
        await service.db.dispose()


async def test_a_sqlite_database_locked_by_another_connection_pauses_the_runner(
    tmp_path: Path,
    log: MessageLog,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # Statements run inline on the event loop: a short busy timeout keeps each try short.
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "service.db"
    service = await PingService.create(path)
    events = [service.ping(f"order-{n}", n) for n in range(3)]
    holder = sqlite_inline.open_sqlite(path)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long transaction, say
    await log.publish([event_record(event) for event in events])
    registry = CollectorRegistry()
    runner = service.runner(log, attempts=3, metrics=registry)
    try:
        async with running(runner):
            await poll(
                lambda: asyncio.sleep(0, runner.health.healthy), lambda ok: not ok, "unhealthy"
            )
            assert dependency_up(registry, service) == 0
            holder.rollback()
            await service.wait_applied(*events)
            await poll(lambda: asyncio.sleep(0, runner.health.healthy), bool, "healthy again")
        assert await service.applied() == dict.fromkeys(events, 1)
        assert await service.dead_letters(log) == []
        assert dependency_up(registry, service) == 1
        changes = state_changes(caplog)
        assert len(changes) == 2, changes
        assert "database is locked" in changes[0]
    finally:
        holder.close()
        await service.db.dispose()


async def test_the_outbox_relay_waits_out_a_postgres_outage_and_publishes_after_it(
    own_postgres: OwnPostgres, log: MessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    """A background loop (here the relay) whose database goes away reports itself unhealthy
    once, backs off, and carries on where it was once the database is back."""
    caplog.set_level(logging.INFO)
    registry = CollectorRegistry()
    metrics = MessagingMetrics(registry)
    metadata = MetaData()
    table = add_outbox_table(metadata)
    db = Database(own_postgres.url(), metadata)
    await db.create_tables()
    relay = OutboxRelay("relaytest", db, table, log, metrics)
    loop = BackgroundLoop("relaytest.outbox-relay", relay.step, dependency_up=metrics.dependency_up)
    labels = {"dependency": "database", "component": "relaytest.outbox-relay"}
    before = [Envelope.wrap(ping, source="relaytest") for ping in pings("before", 3)]
    after = [Envelope.wrap(ping, source="relaytest") for ping in pings("after", 3)]
    running_loop = asyncio.create_task(loop.run())
    try:
        async with db.write() as conn:
            await write_outbox(conn, table, [(Pinged.topic, e) for e in before])
        loop.wake()
        await poll(lambda: published(log), lambda ids: set(keys(before)) <= ids, "the first rows")
        own_postgres.kill()
        loop.wake()
        await poll(lambda: asyncio.sleep(0, loop.health.healthy), lambda ok: not ok, "unhealthy")
        assert registry.get_sample_value("agora_dependency_up", labels) == 0
        await asyncio.to_thread(own_postgres.start)
        async with db.write() as conn:
            await write_outbox(conn, table, [(Pinged.topic, e) for e in after])
        loop.wake()
        await poll(lambda: published(log), lambda ids: set(keys(after)) <= ids, "the later rows")
        await poll(lambda: asyncio.sleep(0, loop.health.healthy), bool, "healthy again")
        assert registry.get_sample_value("agora_dependency_up", labels) == 1
        changes = state_changes(caplog)
        assert len(changes) == 2, changes
        assert "database unavailable" in changes[0]
        assert not [r for r in caplog.records if r.name == "agora.messaging.loop"]
    finally:
        loop.stop()
        await asyncio.wait_for(running_loop, 30)
        await db.dispose()


def pings(name: str, count: int) -> list[Pinged]:
    return [Pinged(ping_id=f"relay-{name}-{new_id()}", n=n) for n in range(count)]


def keys(envelopes: list[Envelope]) -> list[str]:
    return [envelope.key for envelope in envelopes]


async def published(log: MessageLog) -> set[str]:
    records = await log.read(Pinged.topic)
    return {record.key for record in records}


async def test_a_full_disk_under_the_log_pauses_the_runner_until_space_is_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Offsets that cannot be committed for a full disk (the log's file on a small tmpfs, filled)
    make the group unhealthy for the disk, dead-letter nothing, and once space is freed the
    offsets are committed and the group is healthy again."""
    caplog.set_level(logging.INFO)
    service = await PingService.create(tmp_path / "service.db")  # on a disk with room
    events = [service.ping(f"order-{n}", n) for n in range(3)]
    registry = CollectorRegistry()
    with mounted(tmp_path / "log", "4m") as disk:
        log = EmbeddedLog(disk.path / "bus.db")
        await log.open()
        try:
            await log.create_topics([Pinged.topic], 2)
            await log.publish([event_record(event) for event in events])
            runner = service.runner(log, attempts=3, metrics=registry)
            assert disk.fill() > 0
            async with running(runner):
                await service.wait_applied(*events)  # the service's own database has room
                await poll(
                    lambda: asyncio.sleep(0, list(runner.health.outages)),
                    lambda down: down == ["disk"],
                    "the group unhealthy for the disk",
                )
                labels = {"dependency": "disk", "component": f"consumer {service.group}"}
                assert registry.get_sample_value("agora_dependency_up", labels) == 0
                disk.free()
                await poll(lambda: asyncio.sleep(0, runner.health.healthy), bool, "healthy")
                assert registry.get_sample_value("agora_dependency_up", labels) == 1
                # Down once, up once: reads that work on the full disk are no sign that
                # offsets can be committed again.
                changes = [r.getMessage() for r in caplog.records if "disk" in r.getMessage()]
                assert len(changes) == 2, changes
                ends = await log.end_offsets(Pinged.topic)
                await poll(
                    lambda: log.committed(service.group, Pinged.topic),
                    lambda committed: committed == {p: o for p, o in ends.items() if o},
                    "every offset committed",
                )
            assert await service.applied() == dict.fromkeys(events, 1)
            assert await service.dead_letters(log) == []
        finally:
            await log.close()
            await service.db.dispose()
