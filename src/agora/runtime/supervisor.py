"""`agora up` on servers: every service in processes of its own (`agora serve SERVICE`), any
number of replicas each, and the gateway process, behind nginx on the settings' port. The
supervisor migrates the databases, writes nginx's configuration from the service registry
(`agora.gateway.nginx`), starts the children, restarts any that dies, and takes them all with it
when it goes: on SIGTERM it drains them (nginx last, so that the streams' close frames reach
their clients); killed with SIGKILL, the kernel kills them (parent-death signal)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson

from agora.gateway.nginx import ENTRY, nginx_config, settings_limits
from agora.infra.nginx import PACKAGE as NGINX_PACKAGE
from agora.infra.nginx import find_nginx
from agora.runtime.runtime import SERVICE_NAMES
from agora.services.registry import SERVICES
from agora.services.spec import PathTable
from agora.settings import Settings

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"
NGINX = "nginx"


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclasses.dataclass
class Child:
    """A process of the deployment: `agora serve NAME`, or nginx (`command` given)."""

    name: str
    port: int
    env: dict[str, str]
    command: list[str] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, log_dir: str) -> None:
        log = open(os.path.join(log_dir, f"{self.name}-{self.port}.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command
            or [sys.executable, "-m", "agora", "serve", self.name, "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the AGORA_* variables that give a child process the same settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        env[f"AGORA_{name.upper()}"] = text
    return env


@dataclasses.dataclass(frozen=True)
class Plan:
    children: list[Child]
    """Every service's replicas, the gateway process, then nginx."""
    nginx_config: str
    nginx_dir: Path


def plan(settings: Settings, names: Sequence[str] = SERVICE_NAMES) -> Plan:
    """The children: each service's replicas and the gateway process on loopback ports of
    their own, nginx on the settings' host and port in front of them; each with the settings'
    `process_env` of its name."""
    env = {
        **os.environ,
        **settings_env(settings),
        # Every process verifies tokens with identity's keys, fetched through the entry.
        "AGORA_JWKS_URL": f"http://{LOOPBACK}:{settings.port}/.well-known/jwks.json",
        # Each runs the entry's checks itself, and is reached through nginx only.
        "AGORA_HOST": LOOPBACK,
        "AGORA_BEHIND_PROXY": "true",
    }
    children = [
        Child(name, free_port(LOOPBACK), {**env, **settings.process_env.get(name, {})})
        for name in names
        for _ in range(settings.replicas)
    ]
    upstreams: dict[str, list[str]] = {}
    for child in children:
        upstreams.setdefault(child.name, []).append(child.url)
    gateway = Child(
        ENTRY,
        free_port(LOOPBACK),
        {
            **env,
            "AGORA_UPSTREAMS": orjson.dumps(upstreams).decode(),
            **settings.process_env.get(ENTRY, {}),
        },
    )
    nginx_dir = (settings.data_dir / "nginx").resolve()
    config = nginx_config(
        listen=f"{settings.host}:{settings.port}",
        upstreams=upstreams,
        entry=[gateway.url],
        paths=PathTable([spec for spec in SERVICES if spec.name in names]),
        limits=settings_limits(settings),
        prefix=nginx_dir,
    )
    binary = find_nginx() or NGINX
    entry = Child(
        NGINX,
        settings.port,
        dict(os.environ),
        command=[
            binary,
            "-p",
            str(nginx_dir),
            "-c",
            str(nginx_dir / "nginx.conf"),
            "-e",
            str(nginx_dir / "error.log"),
        ],
    )
    return Plan([*children, gateway, entry], config, nginx_dir)


def free_port(host: str) -> int:
    """A port the system has free now (the child binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SupervisorError(Exception):
    """What keeps `agora up` on servers from starting, said so that a user can act on it."""


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plan = plan(settings)
        self.children = self.plan.children
        self.log_dir = str(settings.data_dir / "logs")
        self._stopping = False
        # One client for every health check: each new one loads the CA bundle, tens of
        # milliseconds of CPU, for each child twice a second while they start.
        self._health = httpx.Client(timeout=1)

    def run(self) -> int:
        os.makedirs(self.log_dir, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop())
        self._write_nginx_config()
        for child in self.children:
            child.start(self.log_dir)
        announced = False
        started = time.monotonic()
        while not self._stopping:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None and not self._stopping:
                    child.restarts += 1
                    logger.warning(
                        "%s on %d exited with %s; restarting", child.name, child.port, code
                    )
                    child.start(self.log_dir)
            if not announced and self._all_healthy():
                announced = True
                print(
                    f"Agora: {len(self.children) - 2} service processes and the gateway behind "
                    f"nginx on "
                    f"http://{self.settings.host}:{self.settings.port}, ready after "
                    f"{time.monotonic() - started:.1f}s (logs in {self.log_dir})",
                    file=sys.stderr,
                )
            time.sleep(0.5)  # the supervisor's watch interval, not a synchronisation
        self._health.close()
        return self._drain()

    def _stop(self) -> None:
        self._stopping = True

    def check(self) -> None:
        """nginx is installed and takes its configuration (`nginx -t`)."""
        if find_nginx() is None:
            raise SupervisorError(
                f"nginx, the entry on servers, is not installed: `agora infra up` installs it "
                f"(or `apt-get install -y {NGINX_PACKAGE}`)"
            )
        self._write_nginx_config()
        entry = self.children[-1]
        assert entry.command is not None
        tested = subprocess.run(
            [*entry.command, "-t", "-q"], capture_output=True, text=True, check=False
        )
        if tested.returncode != 0:
            raise SupervisorError(
                f"nginx refused its configuration ({self.plan.nginx_dir / 'nginx.conf'}): "
                f"{(tested.stderr or tested.stdout).strip()}"
            )

    def _write_nginx_config(self) -> None:
        folder = self.plan.nginx_dir
        folder.mkdir(parents=True, exist_ok=True)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / f"{kind}_temp").mkdir(exist_ok=True)
        (folder / "nginx.conf").write_text(self.plan.nginx_config)

    def _all_healthy(self) -> bool:
        for child in self.children:
            try:
                if self._health.get(f"{child.url}/healthz").status_code != 200:
                    return False
            except httpx.TransportError:
                return False
        return True

    def _drain(self, timeout: float = 20) -> int:
        """Every Python process drains (its streams send their close frames through nginx),
        then nginx finishes what it holds and stops (SIGQUIT: its graceful shutdown)."""
        deadline = time.monotonic() + timeout
        python = [child for child in self.children if child.command is None]
        entry = [child for child in self.children if child.command is not None]
        for group, sig in ((python, signal.SIGTERM), (entry, signal.SIGQUIT)):
            for child in group:
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(sig)
            for child in group:
                assert child.process is not None
                try:
                    child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.process.kill()
        return 0


async def migrate_all(settings: Settings) -> None:
    """Create every service's database if missing (PostgreSQL) and apply its migrations."""
    from agora.runtime.runtime import Runtime

    runtime = Runtime(settings)
    try:
        for service in runtime.services:
            await ensure_database(settings.database_url(service.name))
            await service.migrate()
            print(f"migrated {service.name}", file=sys.stderr)
    finally:
        for service in runtime.services:
            await service.platform.db.dispose()


async def ensure_database(url: str) -> None:
    """Create the PostgreSQL database `url` names if it does not exist (SQLite: nothing)."""
    if not url.startswith("postgresql"):
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    connection = await asyncpg.connect(
        host=target.host,
        port=target.port,
        user=target.username,
        password=target.password,
        database="postgres",
    )
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            # Created meanwhile by another process is as good as created here.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await connection.close()


def run_supervisor(settings: Settings) -> int:
    """Raises `SupervisorError` before anything starts if the deployment cannot run here."""
    supervisor = Supervisor(settings)
    supervisor.check()
    asyncio.run(migrate_all(settings))
    return supervisor.run()
