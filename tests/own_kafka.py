"""A Kafka cluster of a test's own (KRaft, one or three nodes), to kill a broker of and start it
again: the shared test servers are never stopped (other runs use them). JVMs start slowly, so
the fixtures are per module."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agora.infra.config import Ports
from agora.infra.kafka import KafkaCluster, KafkaNode
from agora.infra.ports import port_bindable, port_open
from harness import eventually

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports nothing uses now, below the kernel's ephemeral
    range: a killed broker's port must stay free for its restart, and a client's outgoing
    connection could otherwise be given it as its local port meanwhile."""
    try:
        ephemeral_low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    for _ in range(200):
        base = random.randrange(20_000, ephemeral_low - count, 2)
        if all(port_bindable(port) for port in range(base, base + count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports below {ephemeral_low}")


class OwnKafka:
    """`brokers` KRaft nodes (each broker and controller) in `root` on free ports, as `agora
    infra up --kafka-brokers N` lays them out (three nodes: replication factor 3,
    min.insync.replicas 2). `kill` is `kill -9` of one node's JVM (no controlled shutdown, no
    flush); `start` brings it back."""

    def __init__(self, root: Path, brokers: int) -> None:
        self.root = root
        self.cluster = KafkaCluster(root, Ports(kafka=free_port_run(2 * brokers)), brokers)
        self.killed_at: float | None = None

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def replication_factor(self) -> int:
        return 3 if self.cluster.brokers >= 3 else 1

    def env(self) -> dict[str, str]:
        """The settings that point Agora at this cluster (topics and groups are created there
        by the platform, under the run's own namespace)."""
        return {
            "AGORA_KAFKA_BOOTSTRAP": self.bootstrap,
            "AGORA_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
        }

    def node(self, node_id: int) -> KafkaNode:
        return self.cluster.nodes[node_id - 1]

    def partition_leaders(self, prefix: str) -> Counter[int]:
        """How many partitions of the topics named `prefix...` each node leads."""

        async def leaders() -> Counter[int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
                described = await admin.describe_topics(topics)
            finally:
                await admin.close()
            return Counter(p["leader"] for topic in described for p in topic["partitions"])

        return asyncio.run(leaders())

    def start(self) -> None:
        """Start every node that is not running (a killed one on its ports, with its data) and
        wait until the cluster lists all of them."""
        self.cluster.prepare(log=self.root / "maven.log")
        self.cluster.start()
        self.cluster.wait_ready()
        self.killed_at = None

    def kill(self, node_id: int = 1) -> None:
        node = self.node(node_id)
        pid = node.pid()
        assert pid is not None, f"the test's Kafka node {node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        self.killed_at = time.monotonic()
        # node.pid() reaps the JVM (a child of this process): a zombie would keep its PID file
        # pointing at a live entry and the restart would think it still runs.
        eventually(
            lambda: node.pid() is None and not port_open(node.broker_port),
            timeout=30,
            interval=0.05,
            what=f"the killed Kafka node {node_id} to be gone",
        )

    def stop(self) -> None:
        self.cluster.stop()


def _own_kafka(brokers: int) -> Iterator[OwnKafka]:
    root = Path(tempfile.mkdtemp(prefix=f"agora-own-kafka{brokers}-"))
    kafka = OwnKafka(root, brokers)
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[OwnKafka]:
    """One broker: killing it is an outage of the whole log."""
    yield from _own_kafka(1)


@pytest.fixture(scope="module")
def own_kafka_cluster() -> Iterator[OwnKafka]:
    """Three brokers: one of them killed leaves a quorum and an in-sync majority."""
    yield from _own_kafka(3)
