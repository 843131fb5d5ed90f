"""`agora infra`: real PostgreSQL, Redis and Apache Kafka, started by the project itself.

The servers are started (or found running) once for this module in the infra dir of the session
(`AGORA_INFRA_DIR`, default `./.agora-infra`) and left running for the other test modules.
A server that cannot start fails these tests: nothing here is skipped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agora.infra import (
    HOST,
    InfraSettings,
    down,
    ensure_databases_async,
    ensure_up,
    port_bindable,
    status,
)
from agora.infra.redis import RedisServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    # The first run on a fresh machine installs packages and fetches Kafka.
    pytest.mark.timeout(1800),
]

TEST_DATABASE = "infra_test"
CLI = [sys.executable, "-c", "from agora.infra.cli import infra_app; infra_app()"]


@pytest.fixture(scope="module")
def infra() -> InfraSettings:
    """The servers of the session's infra dir, up and answering (left running afterwards)."""
    return ensure_up(databases=[TEST_DATABASE])


def cli(infra: InfraSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `agora infra ARGS` in a process of its own, on the module's infra dir."""
    env = {**os.environ, "AGORA_INFRA_DIR": str(infra.dir)}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_postgres_answers_as_agora_with_the_tuned_settings(infra: InfraSettings) -> None:
    url = infra.database_url(TEST_DATABASE)
    assert url == f"postgresql+asyncpg://agora@{HOST}:{infra.ports.postgres}/{TEST_DATABASE}"
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await connection.fetchrow(
            "SELECT current_user AS who, current_database() AS db, 6 * 7 AS answer"
        )
        assert (row["who"], row["db"], row["answer"]) == ("agora", TEST_DATABASE, 42)
        assert await connection.fetchval("SHOW max_connections") == "300"
        assert await connection.fetchval("SHOW shared_buffers") == "256MB"
        assert await connection.fetchval("SHOW listen_addresses") == HOST
        assert await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = 'agora'")
    finally:
        await connection.close()


async def test_ensure_databases_creates_once_even_when_raced(infra: InfraSettings) -> None:
    name = f"infra_race_{uuid.uuid4().hex[:8]}"
    template = infra.database_url_template
    await asyncio.gather(
        *(ensure_databases_async([name, TEST_DATABASE], template=template) for _ in range(4))
    )
    await ensure_databases_async([name], template=template)  # exists: nothing to do
    connection = await asyncpg.connect(asyncpg_dsn(infra.database_url(name)))
    try:
        assert await connection.fetchval("SELECT current_database()") == name
    finally:
        await connection.close()
    admin = await asyncpg.connect(asyncpg_dsn(infra.database_url("postgres")))
    try:
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


async def test_redis_answers_ping(infra: InfraSettings) -> None:
    assert infra.redis_url == f"redis://{HOST}:{infra.ports.redis}/0"
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        assert await client.ping() is True
        key = f"infra-test-{uuid.uuid4().hex}"
        await client.set(key, b"value", ex=60)
        assert await client.get(key) == b"value"
        await client.delete(key)
    finally:
        await client.aclose()


async def test_kafka_round_trip(infra: InfraSettings) -> None:
    topic = f"infra-test-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        assert len(cluster["brokers"]) == infra.kafka_brokers
        assert {f"{HOST}:{b['port']}" for b in cluster["brokers"]} == set(
            infra.kafka_bootstrap.split(",")
        )
        await admin.create_topics([NewTopic(topic, 3, infra.kafka_brokers)])
        sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
        producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for key, value in sent.items():
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=infra.kafka_bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received: dict[bytes, bytes] = {}
        try:
            async with asyncio.timeout(60):
                while len(received) < len(sent):
                    batches = await consumer.getmany(timeout_ms=1000)
                    for records in batches.values():
                        received.update((r.key, r.value) for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()
        assert received == sent
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def test_status_reports_every_server_up(infra: InfraSettings) -> None:
    servers = {server.name: server for server in status(infra.dir)}
    kafka = [f"kafka-{i + 1}" for i in range(infra.kafka_brokers)]
    assert list(servers) == ["postgres", "redis", *kafka, "chromium"]
    assert all(server.up for server in servers.values()), servers
    # the browser is installed, not started: the browser tests launch it
    assert all(servers[name].pid for name in ["postgres", "redis", *kafka]), servers
    assert servers["chromium"].address == "/usr/bin/chromium"
    assert servers["chromium"].detail.startswith("Chromium"), servers["chromium"]
    assert servers["postgres"].address == f"{HOST}:{infra.ports.postgres}"
    assert servers["redis"].address == f"{HOST}:{infra.ports.redis}"
    assert ",".join(servers[name].address for name in kafka) == infra.kafka_bootstrap

    result = cli(infra, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        [name, "up", server.address] for name, server in servers.items()
    ]


def test_second_up_is_a_no_op_that_prints_only_exports(infra: InfraSettings) -> None:
    before = {server.name: server.pid for server in status(infra.dir)}
    result = cli(infra, "up")
    assert result.returncode == 0, result.stderr
    assert result.stdout == infra.exports()
    assert all(line.startswith("export AGORA_") for line in result.stdout.splitlines())
    assert "already running" in result.stderr
    assert {server.name: server.pid for server in status(infra.dir)} == before

    shell = subprocess.run(
        [
            "bash",
            "-c",
            'eval "$(cat)"; printf "%s\\n" "$AGORA_DATABASE_URL_TEMPLATE" '
            '"$AGORA_KAFKA_BOOTSTRAP" "$AGORA_REDIS_URL"',
        ],
        input=result.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [
        infra.database_url_template,
        infra.kafka_bootstrap,
        infra.redis_url,
    ]


def test_concurrent_ups_agree(infra: InfraSettings) -> None:
    env = {**os.environ, "AGORA_INFRA_DIR": str(infra.dir)}
    processes = [
        subprocess.Popen(
            [*CLI, "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert [stdout for stdout, _ in outputs] == [infra.exports()] * 2


def test_an_infra_dir_reached_through_a_symlink_finds_its_servers(
    infra: InfraSettings, tmp_path: Path
) -> None:
    """A worktree's `.agora-infra` may be a link to another checkout's: the servers running
    there are found through it, not taken for other programs holding their ports."""
    link = tmp_path / "linked-infra"
    link.symlink_to(infra.dir, target_is_directory=True)
    assert all(server.up for server in status(link)), status(link)
    before = {server.name: server.pid for server in status(infra.dir)}
    assert ensure_up(link).kafka_bootstrap == infra.kafka_bootstrap
    assert {server.name: server.pid for server in status(infra.dir)} == before


def test_down_and_status_of_an_empty_dir(tmp_path: Path) -> None:
    assert down(tmp_path / "nothing-here") == []
    (tmp_path / "empty").mkdir()
    assert down(tmp_path / "empty") == []
    servers = [server for server in status(tmp_path / "empty") if server.name != "chromium"]
    assert servers
    assert not any(server.up for server in servers)


def test_redis_down_and_up_round_trip(infra: InfraSettings, tmp_path: Path) -> None:
    """On a Redis of its own (free port, own folder), so the shared one keeps running."""
    port = next(p for p in range(26400, 26500) if port_bindable(p))
    server = RedisServer(tmp_path / "redis", port)
    try:
        assert not server.status().up
        server.ensure_up()
        first = server.status()
        assert first.up
        assert first.pid
        server.ensure_up()  # running: a no-op
        assert server.status().pid == first.pid
        assert server.stop() is True
        assert not server.status().up
        assert server.stop() is False  # nothing to stop is fine
        server.ensure_up()
        assert server.ping()
    finally:
        server.stop()
