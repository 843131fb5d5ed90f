"""Running, watching and stopping the servers' processes; progress on stderr."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from agora.infra.errors import InfraError

__all__ = [
    "Deadline",
    "exclusive",
    "is_root",
    "log_tail",
    "pid_alive",
    "read_pid",
    "run_async",
    "run_logged",
    "say",
    "terminate",
]

T = TypeVar("T")


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


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `lock` (made if missing) for the block: one process
    at a time fills a cache."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
