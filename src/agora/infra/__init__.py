"""Real PostgreSQL, Redis and Apache Kafka servers on 127.0.0.1, started by the project itself.

`ensure_up(dir)` installs what is missing (Debian packages, the Kafka jars from Maven), starts
whatever is not running and returns the addresses as `InfraSettings`; `down(dir)` stops what it
started; `status(dir)` reports each server. Guarantees:

* Every server listens on 127.0.0.1 only; every file they write is under one folder, the infra
  dir (`--dir`, env `AGORA_INFRA_DIR`, default `./.agora-infra`), except the Kafka jars, which are
  cached per version under `~/.cache/agora` (env `AGORA_KAFKA_CACHE`).
* `ensure_up` is idempotent and safe to call from several processes at once: a file lock on the
  infra dir serialises them, a server already running is left alone, and it returns only once
  every server answers real requests (a query, a PING, a Kafka metadata request naming every
  broker). It raises `InfraError` with the tail of the server's log when one cannot start.
* `down` stops only the servers recorded in the infra dir, and is a no-op when none runs.
* Progress goes to stderr; nothing here writes to stdout.

The submodules (`postgres`, `redis`, `kafka`) each manage one server; this module holds what they
share and the calls that drive all three.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import json
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = [
    "DEFAULT_DIR",
    "HOST",
    "InfraError",
    "InfraSettings",
    "Ports",
    "ServerStatus",
    "down",
    "ensure_databases",
    "ensure_databases_async",
    "ensure_up",
    "ensure_up_async",
    "infra_dir",
    "settings",
    "status",
]

HOST = "127.0.0.1"
"""The only address any server listens on."""

DEFAULT_DIR = Path(".agora-infra")
ENV_DIR = "AGORA_INFRA_DIR"
STATE_FILE = "infra.json"
LOCK_FILE = ".lock"

T = TypeVar("T")


class InfraError(RuntimeError):
    """A server could not be installed, started, stopped or reached; the message says why and
    where its log is."""


# --- configuration ---------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InfraError(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1. Kafka broker `i` (0-based) listens on `kafka + 2*i` and its
    controller on the port after that: 59092/59093 for one broker; 59092, 59094, 59096 (and
    controllers 59093, 59095, 59097) for three."""

    postgres: int = 55432
    redis: int = 56379
    kafka: int = 59092

    @classmethod
    def from_env(cls) -> Ports:
        """The defaults, overridden by `AGORA_INFRA_POSTGRES_PORT`, `AGORA_INFRA_REDIS_PORT`
        and `AGORA_INFRA_KAFKA_PORT`."""
        return cls(
            postgres=_env_int("AGORA_INFRA_POSTGRES_PORT", cls.postgres),
            redis=_env_int("AGORA_INFRA_REDIS_PORT", cls.redis),
            kafka=_env_int("AGORA_INFRA_KAFKA_PORT", cls.kafka),
        )

    def kafka_broker(self, index: int) -> int:
        """Client port of broker `index` (0-based)."""
        return self.kafka + 2 * index

    def kafka_controller(self, index: int) -> int:
        """Controller (KRaft quorum) port of broker `index` (0-based)."""
        return self.kafka + 2 * index + 1

    def all(self, kafka_brokers: int) -> list[int]:
        """Every port the servers use with `kafka_brokers` brokers."""
        used = [self.postgres, self.redis]
        for index in range(kafka_brokers):
            used += [self.kafka_broker(index), self.kafka_controller(index)]
        return used

    def validate(self, kafka_brokers: int) -> None:
        """Raise `InfraError` unless every port is in range and no two servers share one."""
        used = self.all(kafka_brokers)
        if any(not 1024 <= port <= 65535 for port in used):
            raise InfraError(f"ports must be within 1024-65535, got {sorted(used)}")
        if len(set(used)) != len(used):
            raise InfraError(f"two servers would share a port: {sorted(used)}")


@dataclass(frozen=True)
class InfraSettings:
    """Where the servers of one infra dir listen. `env()` gives the `AGORA_*` variables that
    configure Agora for them; `exports()` the same as shell lines for `eval`."""

    dir: Path
    ports: Ports
    kafka_brokers: int
    database_url_template: str
    kafka_bootstrap: str
    redis_url: str

    @classmethod
    def of(cls, dir: Path, ports: Ports, kafka_brokers: int) -> InfraSettings:
        """The settings for servers of `dir` on `ports` (nothing is started or checked)."""
        brokers = ",".join(f"{HOST}:{ports.kafka_broker(i)}" for i in range(kafka_brokers))
        return cls(
            dir=dir,
            ports=ports,
            kafka_brokers=kafka_brokers,
            database_url_template=(
                f"postgresql+asyncpg://agora@{HOST}:{ports.postgres}/{{service}}"
            ),
            kafka_bootstrap=brokers,
            redis_url=f"redis://{HOST}:{ports.redis}/0",
        )

    def database_url(self, service: str) -> str:
        """The SQLAlchemy URL of `service`'s own database (see `ensure_databases`)."""
        return self.database_url_template.replace("{service}", service)

    def env(self) -> dict[str, str]:
        """`AGORA_DATABASE_URL_TEMPLATE`, `AGORA_KAFKA_BOOTSTRAP`, `AGORA_REDIS_URL` and
        `AGORA_INFRA_DIR`."""
        return {
            "AGORA_DATABASE_URL_TEMPLATE": self.database_url_template,
            "AGORA_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "AGORA_REDIS_URL": self.redis_url,
            ENV_DIR: str(self.dir),
        }

    def isolated_env(self, label: str) -> dict[str, str]:
        """`env()` with databases and Kafka topics of a run of its own (named `label` and a
        random suffix): runs sharing these servers (tests, benchmarks) never meet."""
        run = f"{label}{uuid.uuid4().hex[:10]}"
        return {
            **self.env(),
            "AGORA_DATABASE_URL_TEMPLATE": self.database_url_template.replace(
                "{service}", f"{{service}}_{run}"
            ),
            "AGORA_KAFKA_NAMESPACE": f"{run}.",
        }

    def exports(self) -> str:
        """`export NAME=VALUE` lines, shell-quoted, one per variable of `env()`."""
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())


@dataclass(frozen=True)
class ServerStatus:
    """One server as `status` found it: `up` means it answered on `address` just now."""

    name: str
    address: str
    up: bool
    pid: int | None = None
    log: Path | None = None
    detail: str = ""

    @property
    def state(self) -> str:
        """ "up"; "starting" (its process runs but does not answer yet); or "down"."""
        if self.up:
            return "up"
        return "starting" if self.pid is not None else "down"


def infra_dir(dir: Path | str | None = None) -> Path:
    """The infra dir as an absolute path: `dir`, else `$AGORA_INFRA_DIR`, else `./.agora-infra`.

    Symbolic links are resolved: a running server is recognised by the paths on its command
    line, which name the real directory (a worktree's link to a shared one must match them)."""
    chosen = Path(dir) if dir is not None else Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)
    return chosen.expanduser().resolve()


# --- small tools the server modules share ----------------------------------------------------


def say(message: str) -> None:
    """One progress line on stderr."""
    print(f"agora infra: {message}", file=sys.stderr, flush=True)


class Deadline:
    """A point in monotonic time; `poll` waits for a condition until then."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def poll(
        self,
        ready: Callable[[], bool],
        *,
        what: str,
        failed: Callable[[], str | None] = lambda: None,
        interval: float = 0.1,
    ) -> None:
        """Return as soon as `ready()` is true; raise `InfraError` when `failed()` returns a
        reason (checked between tries) or when the deadline passes first."""
        while True:
            if ready():
                return
            reason = failed()
            if reason is not None:
                raise InfraError(f"{what}: {reason}")
            if self.expired():
                raise InfraError(f"{what}: not done after {self.seconds:.0f} s")
            time.sleep(min(interval, self.left()))


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(port: int, host: str = HOST) -> bool:
    """Whether a server could bind host:port now: no listener has it, and no connection uses it
    as its local port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def claim_port(port: int, *, server: str, hint: str, timeout: float = 30.0) -> None:
    """Return once a server could bind 127.0.0.1:`port`. Raises `InfraError` at once if another
    program listens there, and after `timeout` seconds if a connection keeps using it as its
    local port. `hint` names the option that chooses another port."""
    if port_open(port):
        raise InfraError(
            f"port {HOST}:{port} ({server}) is taken by another program; stop it or choose "
            f"another port ({hint})"
        )
    if not port_bindable(port):
        say(f"port {HOST}:{port} ({server}) is in use by a connection; waiting for it to close")
        Deadline(timeout).poll(
            lambda: port_bindable(port), what=f"waiting for port {HOST}:{port} ({server})"
        )


_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def _port_set(text: str) -> set[int]:
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit():
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def reserve_ports(ports: Iterable[int]) -> None:
    """Keep the kernel from giving any of `ports` that lie in its ephemeral range to an outgoing
    connection as its local port (`net.ipv4.ip_local_reserved_ports`), so that no client can
    occupy a server's port while the server (re)starts. Needs root; otherwise, or where the
    setting cannot be written, it only says so."""
    try:
        low, high = (int(n) for n in _EPHEMERAL.read_text().split())
        current = _RESERVED.read_text().strip()
    except (OSError, ValueError):
        return
    missing = sorted({p for p in ports if low <= p <= high} - _port_set(current))
    if not missing:
        return
    listed = ",".join(str(port) for port in missing)
    if not is_root():
        say(
            f"ports {listed} lie in the kernel's ephemeral range {low}-{high}: an outgoing "
            "connection may take one while its server restarts; as root, `sysctl -w "
            f"net.ipv4.ip_local_reserved_ports={listed}` prevents it"
        )
        return
    try:
        _RESERVED.write_text(",".join(filter(None, [current, listed])) + "\n")
    except OSError as error:
        say(f"could not reserve ports {listed} (net.ipv4.ip_local_reserved_ports): {error}")
        return
    say(f"reserved ports {listed} for the servers (net.ipv4.ip_local_reserved_ports)")


def read_pid(path: Path) -> int | None:
    """The PID on the first line of `path`, or None if the file is missing or not a PID."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    return int(first) if first.isdigit() else None


def pid_alive(pid: int, needle: str | None = None) -> bool:
    """Whether process `pid` runs (a zombie does not; one of ours is reaped here). With `needle`,
    it must also occur in the process's command line, so that a reused PID is not taken for
    the server."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if needle is not None:
            return needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            )
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def terminate(pid: int, *, needle: str | None, what: str, grace: float = 30.0) -> None:
    """SIGTERM `pid` and wait for it to exit; SIGKILL it if it is still there after `grace`
    seconds. Returns once the process is gone."""
    if not pid_alive(pid, needle):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        Deadline(grace).poll(lambda: not pid_alive(pid, needle), what=f"stopping {what}")
    except InfraError:
        say(f"{what} (pid {pid}) did not stop within {grace:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        Deadline(10).poll(lambda: not pid_alive(pid, needle), what=f"killing {what}")


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of `path`, indented, for error messages."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64_000))
            text = file.read().decode(errors="replace")
    except OSError:
        return f"    (no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or f"    ({path} is empty)"


def run_logged(
    args: Sequence[str],
    *,
    log: Path,
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    as_user: str | None = None,
    cwd: Path | None = None,
) -> None:
    """Run `args` (as user `as_user` if given, with its primary group and no other) with stdout
    and stderr appended to `log`; raise `InfraError` with the log's tail if it fails or outlasts
    `timeout` seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    if as_user is not None:
        account = pwd.getpwnam(as_user)
        user, group, extra_groups = account.pw_uid, account.pw_gid, []
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(args)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                list(args),
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                timeout=timeout,
                cwd=cwd,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        except subprocess.TimeoutExpired:
            raise InfraError(
                f"{what}: no result after {timeout:.0f} s; log {log}:\n{log_tail(log)}"
            ) from None
        except OSError as error:
            raise InfraError(f"{what}: cannot run {args[0]}: {error}") from None
    if result.returncode != 0:
        raise InfraError(f"{what} failed (exit {result.returncode}); log {log}:\n{log_tail(log)}")


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(packages: Iterable[str], *, log: Path) -> None:
    """Install Debian packages non-interactively (`apt-get install -y`), refreshing the package
    lists once if the first try fails. Raises `InfraError` if not root or if it fails."""
    wanted = sorted(set(packages))
    if not wanted:
        return
    if not is_root():
        raise InfraError(
            f"missing {', '.join(wanted)}: install with `sudo apt-get install -y "
            f"{' '.join(wanted)}` (only root can install packages)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=300",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        *wanted,
    ]
    say(f"installing Debian packages: {' '.join(wanted)} (log {log})")
    try:
        run_logged(install, log=log, what="apt-get install", env=env, timeout=1200)
    except InfraError:
        say("apt-get install failed; refreshing the package lists (apt-get update) and retrying")
        run_logged(["apt-get", "update", "-q"], log=log, what="apt-get update", env=env)
        run_logged(install, log=log, what="apt-get install", env=env, timeout=1200)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine `make()` to completion from synchronous code, also when the calling
    thread already runs an event loop (then it runs on a thread of its own)."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="agora-infra") as pool:
        return pool.submit(asyncio.run, main()).result()


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the infra dir's lock (an exclusive `flock` on `.lock`), waiting for it if another
    process holds it. Released when the block ends or the process dies."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            say(f"waiting for another `agora infra` working on {root}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the recorded state of an infra dir ------------------------------------------------------


@dataclass(frozen=True)
class _State:
    ports: Ports = field(default_factory=Ports)
    kafka_brokers: int = 1

    @classmethod
    def load(cls, root: Path) -> _State | None:
        try:
            raw = json.loads((root / STATE_FILE).read_text())
            return cls(ports=Ports(**raw["ports"]), kafka_brokers=int(raw["kafka_brokers"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise InfraError(f"{root / STATE_FILE} is damaged ({error}); remove it") from None

    def describe(self) -> str:
        brokers = f"{self.kafka_brokers} Kafka broker{'s' if self.kafka_brokers > 1 else ''}"
        return (
            f"PostgreSQL port {self.ports.postgres}, Redis port {self.ports.redis}, {brokers} "
            f"from port {self.ports.kafka}"
        )

    def save(self, root: Path) -> None:
        tmp = root / f"{STATE_FILE}.tmp"
        tmp.write_text(
            json.dumps({"ports": asdict(self.ports), "kafka_brokers": self.kafka_brokers})
        )
        tmp.replace(root / STATE_FILE)


def _prepare_dir(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Servers' data of `agora infra`: never committed.\n*\n")


# --- the calls that drive all three servers --------------------------------------------------


def settings(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
) -> InfraSettings:
    """The addresses of the servers of an infra dir, as recorded by its last `ensure_up` (else
    the defaults), without starting or checking anything."""
    root = infra_dir(dir)
    state = _State.load(root) or _State(Ports.from_env(), _env_int("AGORA_INFRA_KAFKA_BROKERS", 1))
    return InfraSettings.of(root, ports or state.ports, kafka_brokers or state.kafka_brokers)


def ensure_up(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
    databases: Iterable[str] = (),
) -> InfraSettings:
    """Make PostgreSQL, Redis and Kafka of the infra dir run and answer, and return where.

    `ports` and `kafka_brokers` (1, or 3 for a three-node KRaft quorum with replication factor
    3), when not given, keep those of the servers already running in the dir; with none
    running they default to `Ports.from_env()` and `$AGORA_INFRA_KAFKA_BROKERS` or 1. Each
    database named in `databases` exists when this returns. Installs missing Debian packages
    and fetches the Kafka jars on first use. Idempotent; concurrent callers are serialised by a
    file lock. Raises `InfraError` (with the server's log tail) if a server cannot be made to
    answer, and if servers of the dir already run with ports or a broker count other than the
    ones given.
    """
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer, ensure_databases_at
    from agora.infra.redis import RedisServer

    root = infra_dir(dir)
    _prepare_dir(root)
    with locked(root):
        previous = _State.load(root)
        running = [] if previous is None else [s.name for s in _statuses(root, previous) if s.up]
        if previous is not None and running:
            wanted_ports = ports or previous.ports
            brokers = kafka_brokers or previous.kafka_brokers
        else:
            wanted_ports = ports or Ports.from_env()
            brokers = kafka_brokers or _env_int("AGORA_INFRA_KAFKA_BROKERS", 1)
        if brokers not in (1, 3):
            raise InfraError(f"--kafka-brokers must be 1 or 3, got {brokers}")
        wanted_ports.validate(brokers)
        wanted = _State(wanted_ports, brokers)
        if previous is not None and running and previous != wanted:
            raise InfraError(
                f"{', '.join(running)} of {root} already run with other settings "
                f"({previous.describe()}); stop them first: agora infra down --dir {root}"
            )
        wanted.save(root)
        reserve_ports(wanted_ports.all(brokers))
        postgres = PostgresServer(root / "postgres", wanted_ports.postgres)
        redis = RedisServer(root / "redis", wanted_ports.redis)
        kafka = KafkaCluster(root / "kafka", wanted_ports, brokers)
        logs = root / "logs"

        missing = postgres.missing_packages() + redis.missing_packages() + kafka.missing_packages()
        apt_install(missing, log=logs / "apt.log")
        kafka.prepare(log=logs / "maven.log")  # the jars, storage formatted once per node

        kafka.start()  # the slowest to boot: PostgreSQL and Redis start meanwhile
        postgres.ensure_up()
        redis.ensure_up()
        kafka.wait_ready()
        result = InfraSettings.of(root, wanted_ports, brokers)
        names = list(databases)
        if names:
            ensure_databases_at(result.database_url_template, names)
    say(
        f"ready: PostgreSQL {HOST}:{wanted_ports.postgres}, Redis {HOST}:{wanted_ports.redis}, "
        f"Kafka {result.kafka_bootstrap} (data in {root})"
    )
    return result


async def ensure_up_async(
    dir: Path | str | None = None,
    *,
    ports: Ports | None = None,
    kafka_brokers: int | None = None,
    databases: Iterable[str] = (),
) -> InfraSettings:
    """`ensure_up` on a worker thread, for async callers (same guarantees)."""
    names = list(databases)
    return await asyncio.to_thread(
        ensure_up, dir, ports=ports, kafka_brokers=kafka_brokers, databases=names
    )


def _statuses(root: Path, state: _State) -> list[ServerStatus]:
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer
    from agora.infra.redis import RedisServer

    return [
        PostgresServer(root / "postgres", state.ports.postgres).status(),
        RedisServer(root / "redis", state.ports.redis).status(),
        *KafkaCluster(root / "kafka", state.ports, state.kafka_brokers).status(),
    ]


def status(dir: Path | str | None = None) -> list[ServerStatus]:
    """Each server of the infra dir (PostgreSQL, Redis, every Kafka broker), up or down, on the
    ports its last `ensure_up` recorded (the defaults if it never ran). Starts nothing."""
    root = infra_dir(dir)
    return _statuses(root, _State.load(root) or _State(Ports.from_env()))


def down(dir: Path | str | None = None) -> list[str]:
    """Stop every server of the infra dir that runs (Kafka first, then Redis, then PostgreSQL)
    and return the names of those stopped. Data stays on disk; nothing running is fine.
    Raises `InfraError` only if a server refuses to stop."""
    from agora.infra.kafka import KafkaCluster
    from agora.infra.postgres import PostgresServer
    from agora.infra.redis import RedisServer

    root = infra_dir(dir)
    if not root.is_dir():
        return []
    with locked(root):
        state = _State.load(root) or _State(Ports.from_env())
        stopped = KafkaCluster(root / "kafka", state.ports, state.kafka_brokers).stop()
        if RedisServer(root / "redis", state.ports.redis).stop():
            stopped.append("redis")
        if PostgresServer(root / "postgres", state.ports.postgres).stop():
            stopped.append("postgres")
    return stopped


def ensure_databases(names: Iterable[str], *, template: str | None = None) -> None:
    """Create each named database (owned by `agora`) unless it exists; safe when another
    process creates the same one at the same time.

    `template` is a URL with a `{service}` placeholder, default `$AGORA_DATABASE_URL_TEMPLATE`,
    else that of the default infra dir. Names: letters, digits, `_` and `-`.
    """
    from agora.infra.postgres import ensure_databases_at

    ensure_databases_at(template or _default_template(), list(names))


async def ensure_databases_async(names: Iterable[str], *, template: str | None = None) -> None:
    """`ensure_databases` for async callers (same guarantees)."""
    from agora.infra.postgres import create_databases

    await create_databases(template or _default_template(), list(names))


def _default_template() -> str:
    return os.environ.get("AGORA_DATABASE_URL_TEMPLATE") or settings().database_url_template
