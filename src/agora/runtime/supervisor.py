"""`agora up` on servers: every service in processes of its own (`agora serve SERVICE`), any
number of replicas each, behind one gateway process. The supervisor migrates the databases,
starts the children, restarts any that dies, and takes them all with it when it goes: on
SIGTERM it drains them; killed with SIGKILL, the kernel kills them (parent-death signal)."""

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

import httpx
import orjson

from agora.runtime.runtime import SERVICE_NAMES
from agora.settings import Settings

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclasses.dataclass
class Child:
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, log_dir: str) -> None:
        log = open(os.path.join(log_dir, f"{self.name}-{self.port}.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agora", "serve", self.name, "--port", str(self.port)],
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


def plan(settings: Settings, names: Sequence[str] = SERVICE_NAMES) -> list[Child]:
    """The children: each service's replicas on ports of their own, then the gateway on the
    settings' port; each with the settings' `process_env` of its name."""
    env = {
        **os.environ,
        **settings_env(settings),
        # Every process verifies tokens with identity's keys, fetched through the gateway.
        "AGORA_JWKS_URL": f"http://{LOOPBACK}:{settings.port}/.well-known/jwks.json",
    }
    # Services listen on loopback only: the gateway is the one entry from outside.
    service_env = {**env, "AGORA_HOST": LOOPBACK, "AGORA_BEHIND_GATEWAY": "true"}
    children = [
        Child(name, free_port(LOOPBACK), {**service_env, **settings.process_env.get(name, {})})
        for name in names
        for _ in range(settings.replicas)
    ]
    upstreams: dict[str, list[str]] = {}
    for child in children:
        upstreams.setdefault(child.name, []).append(child.url)
    gateway_env = {
        **env,
        "AGORA_UPSTREAMS": orjson.dumps(upstreams).decode(),
        **settings.process_env.get("gateway", {}),
    }
    children.append(Child("gateway", settings.port, gateway_env))
    return children


def free_port(host: str) -> int:
    """A port the system has free now (the child binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children = plan(settings)
        self.log_dir = str(settings.data_dir / "logs")
        self._stopping = False
        # One client for every health check: each new one loads the CA bundle, tens of
        # milliseconds of CPU, for each child twice a second while they start.
        self._health = httpx.Client(timeout=1)

    def run(self) -> int:
        os.makedirs(self.log_dir, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop())
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
                    f"Agora: {len(self.children) - 1} service processes behind the gateway on "
                    f"http://{self.settings.host}:{self.settings.port}, ready after "
                    f"{time.monotonic() - started:.1f}s (logs in {self.log_dir})",
                    file=sys.stderr,
                )
            time.sleep(0.5)  # the supervisor's watch interval, not a synchronisation
        self._health.close()
        return self._drain()

    def _stop(self) -> None:
        self._stopping = True

    def _all_healthy(self) -> bool:
        for child in self.children:
            try:
                if self._health.get(f"{child.url}/healthz").status_code != 200:
                    return False
            except httpx.TransportError:
                return False
        return True

    def _drain(self, timeout: float = 20) -> int:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
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
    asyncio.run(migrate_all(settings))
    return Supervisor(settings).run()
