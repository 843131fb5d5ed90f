"""PostgreSQL for `agora infra`: a throwaway cluster in `DIR/postgres/data`.

The server refuses to run as root, so when run as root the cluster belongs to the Debian user
`postgres` (initdb and pg_ctl run as that user); otherwise it belongs to the caller. It listens
on 127.0.0.1 only (TCP) and on a Unix socket in `DIR/postgres/run` (or /tmp when that path
would be too long for a socket). Authentication is `trust`: a test server, never a real one.
Role `agora` is a superuser; each service gets its own database (`ensure_databases`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agora.infra.config import HOST
from agora.infra.errors import InfraError
from agora.infra.ports import claim_port
from agora.infra.processes import (
    Deadline,
    is_root,
    log_tail,
    pid_alive,
    read_pid,
    run_async,
    run_logged,
    say,
    terminate,
)
from agora.infra.state import ServerStatus

# asyncpg ships no type information: it is used through `Any`.
asyncpg: Any = importlib.import_module("asyncpg")

PACKAGE = "postgresql"
ROLE = "agora"
OS_USER = "postgres"
MAX_CONNECTIONS = 300
SHARED_BUFFERS = "256MB"
START_TIMEOUT = 90.0
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,62}")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; PostgreSQL adds "/.s.PGSQL.<port>.lock"


def find_bindir() -> Path | None:
    """The `bin` folder of the newest PostgreSQL installed from Debian packages
    (`/usr/lib/postgresql/<major>/bin`), else the one holding `pg_ctl` on PATH, else None."""
    found: list[tuple[int, Path]] = []
    for server in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        major = server.parent.parent.name
        if major.isdigit():
            found.append((int(major), server.parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("pg_ctl")
    if on_path:
        bindir = Path(on_path).resolve().parent
        if (bindir / "postgres").exists():
            return bindir
    return None


class PostgresServer:
    """One PostgreSQL cluster under `root`, listening on 127.0.0.1:`port`."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.setup_log = root / "setup.log"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def owner(self) -> str | None:
        """The OS user the server runs as: `postgres` when we are root, else ourselves (None)."""
        return OS_USER if is_root() else None

    def missing_packages(self) -> list[str]:
        """["postgresql"] if no PostgreSQL server binaries are installed, else []."""
        return [] if find_bindir() else [PACKAGE]

    def socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}.lock")) < _SOCKET_PATH_MAX:
            return preferred
        return Path("/tmp")

    def pid(self) -> int | None:
        """The postmaster's PID if it runs, else None."""
        pid = read_pid(self.data / "postmaster.pid")
        if pid is not None and pid_alive(pid, "postgres"):
            return pid
        return None

    def accepting(self) -> bool:
        """Whether the server accepts connections on 127.0.0.1:`port` (pg_isready)."""
        bindir = find_bindir()
        if bindir is None:
            return False
        result = subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-t", "2"],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def status(self) -> ServerStatus:
        pid = self.pid()
        up = pid is not None and self.accepting()
        return ServerStatus("postgres", self.address, up, pid, self.log)

    def ensure_up(self, timeout: float = START_TIMEOUT) -> None:
        """Create the cluster if needed, start it unless it runs, and return once it accepts
        connections and role `agora` and its database exist. Raises `InfraError` otherwise."""
        bindir = find_bindir()
        if bindir is None:
            raise InfraError("PostgreSQL is not installed (Debian package `postgresql`)")
        deadline = Deadline(timeout)
        if self.pid() is not None:
            say(f"PostgreSQL already running on {self.address}")
        else:
            claim_port(
                self.port, server="PostgreSQL", hint="--postgres-port / AGORA_INFRA_POSTGRES_PORT"
            )
            self._initdb(bindir)
            self._configure()
            say(f"starting PostgreSQL {self._major()} on {self.address} (log {self.log})")
            try:
                run_logged(
                    [
                        str(bindir / "pg_ctl"),
                        "start",
                        "-D",
                        str(self.data),
                        "-l",
                        str(self.log),
                        "-w",
                        "-t",
                        str(int(deadline.left()) or 1),
                        "-s",
                    ],
                    log=self.setup_log,
                    what="pg_ctl start",
                    as_user=self.owner,
                    cwd=self.root,
                )
            except InfraError as error:
                raise InfraError(
                    f"PostgreSQL did not start: {error}\nserver log {self.log}:\n"
                    f"{log_tail(self.log)}"
                ) from None
        deadline.poll(
            self.accepting,
            what=f"waiting for PostgreSQL on {self.address} (log {self.log})",
            failed=lambda: None if self.pid() is not None else "the server exited",
        )
        run_async(self._ensure_role)

    def stop(self) -> bool:
        """Stop the server (`pg_ctl stop -m fast`) if it runs; return whether it ran."""
        pid = self.pid()
        if pid is None:
            return False
        say(f"stopping PostgreSQL on {self.address}")
        bindir = find_bindir()
        try:
            if bindir is None:
                raise InfraError("pg_ctl is missing")
            run_logged(
                [str(bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-s"],
                log=self.setup_log,
                what="pg_ctl stop",
                as_user=self.owner,
                cwd=self.root,
                timeout=90,
            )
        except InfraError as error:
            say(f"{error}; sending SIGTERM instead")
        terminate(pid, needle="postgres", what="PostgreSQL")
        return True

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """`pg_ctl restart -m fast`: every session is ended (their transactions rolled back)
        after a checkpoint, and the server is back on the same port when this returns."""
        bindir = find_bindir()
        if bindir is None or self.pid() is None:
            raise InfraError(f"no PostgreSQL runs on {self.address} to restart")
        say(f"restarting PostgreSQL on {self.address}")
        run_logged(
            [
                str(bindir / "pg_ctl"),
                "restart",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "-s",
            ],
            log=self.setup_log,
            what="pg_ctl restart",
            as_user=self.owner,
            cwd=self.root,
            timeout=timeout,
        )

    # --- helpers ---------------------------------------------------------------------------

    def _major(self) -> str:
        try:
            return (self.data / "PG_VERSION").read_text().strip()
        except FileNotFoundError:
            return "?"

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            shutil.chown(path, self.owner, self.owner)

    def _check_reachable(self) -> None:
        """As root, the `postgres` user must be able to walk down to `root`."""
        if self.owner is None:
            return
        for folder in [self.root, *self.root.parents]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise InfraError(
                    f"user {self.owner} cannot enter {folder} (mode {stat.filemode(mode)}), so "
                    f"PostgreSQL cannot use {self.data}: choose an infra dir under a folder "
                    "every user may enter (--dir / AGORA_INFRA_DIR), or `chmod o+x` it"
                )

    def _initdb(self, bindir: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        self._check_reachable()
        if (self.data / "PG_VERSION").exists():
            major = self._major()
            if major != bindir.parent.name and bindir.parent.name.isdigit():
                raise InfraError(
                    f"{self.data} was made by PostgreSQL {major} but {bindir.parent.name} is "
                    f"installed: remove {self.root} (its data is lost) and run up again"
                )
            return
        if self.data.exists():  # left by an initdb that did not finish
            shutil.rmtree(self.data)
        say(f"creating a PostgreSQL cluster in {self.data} (initdb, log {self.setup_log})")
        run_logged(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                OS_USER,
                "-E",
                "UTF8",
                "--no-locale",
            ],
            log=self.setup_log,
            what="initdb",
            as_user=self.owner,
            cwd=self.root,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# Settings of `agora infra`, rewritten at each start:\n")
            conf.write("include_if_exists = 'agora.conf'\n")

    def _configure(self) -> None:
        sockets = self.socket_dir()
        if sockets != Path("/tmp"):
            sockets.mkdir(exist_ok=True)
            self._chown(sockets)
        conf = self.data / "agora.conf"
        conf.write_text(
            "# Written by `agora infra up` before each start: edits here are overwritten.\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            f"max_connections = {MAX_CONNECTIONS}\n"
            f"shared_buffers = {SHARED_BUFFERS}\n"
            "fsync = on\n"
        )
        self._chown(conf)
        if not self.log.exists():
            self.log.touch()
        self._chown(self.log)
        if self.setup_log.exists():
            self._chown(self.setup_log)

    async def _ensure_role(self) -> None:
        connection = await asyncpg.connect(
            host=HOST, port=self.port, user=OS_USER, database="postgres", timeout=10
        )
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE):
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await connection.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER")
        finally:
            await connection.close()
        await create_databases(f"postgresql://{ROLE}@{HOST}:{self.port}/{{service}}", [ROLE])


def _admin_dsn(template: str) -> str:
    """The DSN of database `postgres` on the server a URL template points at, without the
    SQLAlchemy driver suffix (`postgresql+asyncpg://` becomes `postgresql://`)."""
    if "{service}" not in template:
        raise InfraError(f"database URL template {template!r} has no {{service}} placeholder")
    scheme, sep, rest = template.replace("{service}", "postgres").partition("://")
    if not sep:
        raise InfraError(f"{template!r} is not a URL")
    return f"{scheme.split('+', 1)[0]}://{rest}"


async def create_databases(template: str, names: Sequence[str]) -> None:
    """Create each database of `names` on the server of `template` unless it exists (owned by
    the template's user). Concurrent creators of the same name are fine. Raises `InfraError`
    for a name that is not letters, digits, `_` or `-` (63 at most)."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if not _DATABASE_NAME.fullmatch(name):
            raise InfraError(f"{name!r} is not a database name Agora uses")
    if not wanted:
        return
    connection = await asyncpg.connect(_admin_dsn(template), timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", wanted
        )
        existing = {row["datname"] for row in rows}
        for name in wanted:
            if name in existing:
                continue
            for attempt in range(50):
                try:
                    await connection.execute(f'CREATE DATABASE "{name}"')
                    break
                except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                    break  # another process made it first
                except asyncpg.ObjectInUseError:
                    # template1 in use by a concurrent CREATE DATABASE: try again shortly.
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.1)
    finally:
        await connection.close()


def ensure_databases_at(template: str, names: Sequence[str]) -> None:
    """`create_databases` from synchronous code."""
    run_async(lambda: create_databases(template, names))
