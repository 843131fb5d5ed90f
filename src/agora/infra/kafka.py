"""Apache Kafka for `agora infra`: KRaft nodes (each one broker and controller, no ZooKeeper)
run from the jars Maven Central publishes, without Kafka's tarball or scripts.

* Jars: `deploy/kafka/pom.xml` pins `org.apache.kafka:kafka_2.13` and the Log4j 2 binding its
  distribution ships; `mvn dependency:copy-dependencies` copies them once into
  `~/.cache/agora/kafka-<version>/<pom digest>/lib` (env `AGORA_KAFKA_CACHE` moves
  `~/.cache/agora`). The file `complete` beside `lib` is written last, so an interrupted fetch is
  done again; a changed pom gets a folder of its own (brokers running on the old jars keep them).
* Storage: each node's folder `DIR/kafka/node-<id>` is formatted once (`kafka.tools.StorageTool
  format`): a single node as a standalone dynamic quorum (`--standalone`), three nodes as a
  three-voter dynamic quorum (`--initial-controllers`). `DIR/kafka/cluster.json` records the
  cluster id and layout; a different broker count or port is a new cluster (old data removed).
* Process: `java -Xmx512m ... -cp 'LIB/*' kafka.Kafka server.properties`, in a session of its
  own, output appended to `node-<id>/kafka.log`, PID in `node-<id>/kafka.pid`. Extra JVM flags:
  env `AGORA_KAFKA_JVM_OPTS`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from agora.infra.config import HOST, Ports
from agora.infra.errors import InfraError
from agora.infra.kafka_jars import (
    cached_lib,
    fetch_jars,
    find_java,
    java_major,
    pinned_version,
    pom_path,
)
from agora.infra.ports import claim_port, port_open
from agora.infra.processes import (
    Deadline,
    log_tail,
    pid_alive,
    read_pid,
    run_async,
    run_logged,
    say,
    terminate,
)
from agora.infra.state import ServerStatus

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
START_TIMEOUT = 180.0
JVM_HEAP = ["-Xms128m", "-Xmx512m"]
JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]
TOOL_JVM = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
JAVA_PACKAGE = "default-jre-headless"
MAVEN_PACKAGE = "maven"
MIN_JAVA = 17

_LOG4J2 = """\
# Written by `agora infra up`: the Kafka nodes log to stdout, which goes to node-<id>/kafka.log.
status = warn
name = agora-kafka
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""
_LOG4J2_TOOLS = """\
# Written by `agora infra up`: the storage tool logs warnings only (its own output stays).
status = warn
name = agora-kafka-tools
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
"""


def new_uuid() -> str:
    """A random id as Kafka writes one (URL-safe base64 without padding, no leading dash)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --- the nodes --------------------------------------------------------------------------------


class KafkaNode:
    """One combined broker+controller, `node.id` = `node_id`, files in `root`."""

    def __init__(self, root: Path, node_id: int, broker_port: int, controller_port: int):
        self.root = root
        self.node_id = node_id
        self.broker_port = broker_port
        self.controller_port = controller_port
        self.data = root / "data"
        self.properties = root / "server.properties"
        self.pid_file = root / "kafka.pid"
        self.log = root / "kafka.log"

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.broker_port}"

    def pid(self) -> int | None:
        """The node's JVM PID if it runs (its command line names this node's properties)."""
        pid = read_pid(self.pid_file)
        if pid is not None and pid_alive(pid, str(self.properties)):
            return pid
        return None

    def formatted(self) -> bool:
        return (self.data / "meta.properties").exists()

    def status(self) -> ServerStatus:
        pid = self.pid()
        return ServerStatus(
            self.name,
            self.address,
            pid is not None and port_open(self.broker_port),
            pid,
            self.log,
            f"controller {HOST}:{self.controller_port}",
        )


class KafkaCluster:
    """`brokers` KRaft nodes under `root` on the Kafka ports of `ports`."""

    def __init__(self, root: Path, ports: Ports, brokers: int) -> None:
        self.root = root
        self.brokers = brokers
        self.nodes = [
            KafkaNode(
                root / f"node-{i + 1}", i + 1, ports.kafka_broker(i), ports.kafka_controller(i)
            )
            for i in range(brokers)
        ]
        self.layout_file = root / "cluster.json"
        self.log4j = root / "log4j2.properties"
        self.log4j_tools = root / "log4j2-tools.properties"
        self._lib: Path | None = None
        self._java: str | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def missing_packages(self) -> list[str]:
        """The Debian packages to install before `prepare`: a Java runtime if there is no
        `java`, and Maven if there is no `mvn` and the jars are not cached yet."""
        missing = [] if find_java() else [JAVA_PACKAGE]
        if cached_lib(pom_path()) is None and shutil.which("mvn") is None:
            missing.append(MAVEN_PACKAGE)
        return missing

    def status(self) -> list[ServerStatus]:
        return [node.status() for node in self.nodes]

    # --- preparing ------------------------------------------------------------------------

    def prepare(self, *, log: Path) -> None:
        """Fetch the jars if needed, write each node's configuration and format the storage of
        every node not formatted yet. Raises `InfraError` if any of it fails."""
        java = find_java()
        if java is None:
            raise InfraError("Java is not installed (Debian package `default-jre-headless`)")
        if java_major(java) < MIN_JAVA:
            raise InfraError(f"Kafka 4 needs Java {MIN_JAVA} or newer; {java} is older")
        self._java = java
        self._lib = fetch_jars(pom_path(), log=log)
        layout = self._layout()
        self._write(self.log4j, _LOG4J2)
        self._write(self.log4j_tools, _LOG4J2_TOOLS)
        for node in self.nodes:
            self._write(node.properties, self._properties(node, layout))
        for node in self.nodes:
            if node.pid() is None and not node.formatted():
                self._format(node, layout)

    def _layout(self) -> dict[str, Any]:
        wanted = {
            "brokers": self.brokers,
            "ports": [[node.broker_port, node.controller_port] for node in self.nodes],
        }
        try:
            layout: dict[str, Any] = json.loads(self.layout_file.read_text())
        except FileNotFoundError:
            layout = {}
        except ValueError:
            layout = {"damaged": True}
        if layout and all(layout.get(key) == value for key, value in wanted.items()):
            return layout
        old_nodes = sorted(self.root.glob("node-*"))
        if old_nodes:
            for folder in old_nodes:
                pid = read_pid(folder / "kafka.pid")
                if pid is not None and pid_alive(pid, str(folder / "server.properties")):
                    raise InfraError(
                        f"Kafka node {folder.name} still runs with another layout; "
                        "stop it first: agora infra down"
                    )
            say(
                f"the Kafka layout changed ({layout.get('brokers', '?')} -> {self.brokers} "
                f"brokers, ports {wanted['ports']}): removing the old Kafka data in {self.root}"
            )
            for folder in old_nodes:
                shutil.rmtree(folder)
        layout = {
            **wanted,
            "cluster_id": new_uuid(),
            "directory_ids": [new_uuid() for _ in self.nodes],
            "version": pinned_version(pom_path()),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.layout_file.write_text(json.dumps(layout, indent=2) + "\n")
        return layout

    def _properties(self, node: KafkaNode, layout: dict[str, Any]) -> str:
        replication = 3 if self.brokers >= 3 else 1
        min_isr = 2 if self.brokers >= 3 else 1
        quorum = ",".join(f"{HOST}:{n.controller_port}" for n in self.nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "listeners": f"PLAINTEXT://{HOST}:{node.broker_port},"
            f"CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{node.broker_port},"
            f"CONTROLLER://{HOST}:{node.controller_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": quorum,
            "log.dirs": str(node.data),
            "num.partitions": 8,
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
        }
        lines = [
            "# Written by `agora infra up` before each start: edits here are overwritten.",
            f"# Cluster {layout['cluster_id']}, node {node.node_id} of {self.brokers}.",
            *(f"{key}={value}" for key, value in settings.items()),
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)

    def _classpath(self) -> str:
        assert self._lib is not None, "prepare() first"
        return f"{self._lib}/*"

    def _format(self, node: KafkaNode, layout: dict[str, Any]) -> None:
        assert self._java is not None, "prepare() first"
        if node.data.exists():  # left by a format that did not finish
            shutil.rmtree(node.data)
        if self.brokers == 1:
            quorum = ["--standalone"]
        else:
            voters = ",".join(
                f"{n.node_id}@{HOST}:{n.controller_port}:{directory}"
                for n, directory in zip(self.nodes, layout["directory_ids"], strict=True)
            )
            quorum = ["--initial-controllers", voters]
        say(f"formatting the storage of Kafka node {node.node_id} in {node.data}")
        run_logged(
            [
                self._java,
                *TOOL_JVM,
                f"-Dlog4j2.configurationFile={self.log4j_tools}",
                "-cp",
                self._classpath(),
                STORAGE_TOOL,
                "format",
                "--cluster-id",
                layout["cluster_id"],
                "--config",
                str(node.properties),
                *quorum,
            ],
            log=node.log,
            what=f"formatting Kafka node {node.node_id}",
            timeout=180,
        )

    # --- running --------------------------------------------------------------------------

    def _command(self, node: KafkaNode) -> list[str]:
        assert self._java is not None, "prepare() first"
        extra = shlex.split(os.environ.get("AGORA_KAFKA_JVM_OPTS", ""))
        return [
            self._java,
            *JVM_HEAP,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self.log4j}",
            f"-Dkafka.logs.dir={node.root}",
            *extra,
            "-cp",
            self._classpath(),
            MAIN_CLASS,
            str(node.properties),
        ]

    def start(self) -> None:
        """Launch every node that does not run, returning once each runs the JVM (without
        waiting for it to answer: see `wait_ready`)."""
        idle = [node for node in self.nodes if node.pid() is None]
        if not idle:
            say(f"Kafka already running on {self.bootstrap}")
            return
        for node in idle:
            for port in (node.broker_port, node.controller_port):
                claim_port(
                    port,
                    server=f"Kafka node {node.node_id}",
                    hint="--kafka-port / AGORA_INFRA_KAFKA_PORT",
                )
        for node in idle:
            say(f"starting Kafka node {node.node_id} on {node.address} (log {node.log})")
            command = self._command(node)
            with node.log.open("ab") as log:
                log.write(f"\n--- {time.strftime('%F %T')} $ {shlex.join(command)}\n".encode())
            pid = os.posix_spawn(
                command[0],
                command,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(node.log), os.O_WRONLY | os.O_APPEND, 0o644),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
            )
            tmp = node.pid_file.with_suffix(".tmp")
            tmp.write_text(f"{pid}\n")
            tmp.replace(node.pid_file)
            self._wait_launched(node, pid)

    @staticmethod
    def _wait_launched(node: KafkaNode, pid: int) -> None:
        """Until the child has exec'd the JVM its command line is empty, and `node.pid()` (so
        `wait_ready`) would take a node just launched for one that exited."""
        Deadline(10).poll(
            lambda: node.pid() is not None or not pid_alive(pid),
            what=f"launching Kafka node {node.node_id}",
            interval=0.005,
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once every node accepts connections and a metadata request (aiokafka admin
        client) lists all `brokers` brokers. Raises `InfraError` with the log tail of a node
        that exited or, at the deadline, of every node."""
        deadline = Deadline(timeout)
        say(f"waiting for Kafka on {self.bootstrap}")
        started = time.monotonic()
        for node in self.nodes:
            deadline.poll(
                functools.partial(port_open, node.broker_port),
                what=f"waiting for Kafka node {node.node_id} on {node.address}",
                failed=self._exited,
                interval=0.2,
            )
        try:
            run_async(lambda: self._metadata_ready(deadline))
        except InfraError:
            raise
        except Exception as error:  # an unforeseen client error: still report the logs
            raise InfraError(f"Kafka metadata check failed: {error!r}\n{self._tails()}") from None
        say(
            f"Kafka ready ({self.brokers} broker{'s' if self.brokers > 1 else ''}) "
            f"after {time.monotonic() - started:.1f} s"
        )

    def _exited(self) -> str | None:
        for node in self.nodes:
            if node.pid() is None:
                return f"node {node.node_id} exited; log {node.log}:\n{log_tail(node.log)}"
        return None

    def _tails(self) -> str:
        return "\n".join(f"log {node.log}:\n{log_tail(node.log, 25)}" for node in self.nodes)

    async def _metadata_ready(self, deadline: Deadline) -> None:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.errors import KafkaError

        last = "no answer"
        while True:
            exited = self._exited()
            if exited is not None:
                raise InfraError(f"Kafka: {exited}")
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=max(1000, min(10_000, int(deadline.left() * 1000))),
            )
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                seen = len(cluster.get("brokers", []))
                if seen >= self.brokers:
                    return
                last = f"{seen} of {self.brokers} brokers registered"
            except (TimeoutError, KafkaError, OSError) as error:
                last = repr(error)
            finally:
                await admin.close()
            if deadline.expired():
                raise InfraError(
                    f"Kafka on {self.bootstrap} did not answer a metadata request within "
                    f"{deadline.seconds:.0f} s (last: {last})\n{self._tails()}"
                )
            await asyncio.sleep(min(0.25, deadline.left()))

    def stop(self) -> list[str]:
        """Stop every running node (SIGTERM to all at once: a controlled shutdown; SIGKILL
        after 60 s) and return their names."""
        running = [(node, pid) for node in self.nodes if (pid := node.pid()) is not None]
        for node in self.nodes:
            if node.pid() is None:
                node.pid_file.unlink(missing_ok=True)
        if not running:
            return []
        say(f"stopping Kafka ({', '.join(node.name for node, _ in running)})")
        for _, pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for node, pid in running:
            terminate(pid, needle=str(node.properties), what=f"Kafka node {node.node_id}", grace=60)
            node.pid_file.unlink(missing_ok=True)
        return [node.name for node, _ in running]
