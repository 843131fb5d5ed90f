"""Toxiproxy, the TCP proxy the fault tests put between the services and a server to make the
network to it slow, lossy or silent (latency, reset connections, data that stops flowing).

Built from its Go module with `go install` once per version into
`~/.cache/agora/toxiproxy-<version>/toxiproxy-server` (env `AGORA_TOXIPROXY_CACHE` moves
`~/.cache/agora`); the binary is moved there once built, so an interrupted build leaves nothing
that looks complete. The server runs as a child of its caller on 127.0.0.1 and is driven over
its HTTP API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from agora.infra.config import HOST
from agora.infra.errors import InfraError
from agora.infra.processes import Deadline, exclusive, log_tail, run_logged, say

VERSION = "2.5.0"
PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"
START_TIMEOUT = 30.0


def binary_path(version: str = VERSION) -> Path:
    base = os.environ.get("AGORA_TOXIPROXY_CACHE") or str(Path.home() / ".cache" / "agora")
    return Path(base).expanduser().absolute() / f"toxiproxy-{version}" / "toxiproxy-server"


def find_go() -> str | None:
    """`go` on PATH, else the official tarball's /usr/local/go/bin/go, else None."""
    found = shutil.which("go")
    if found:
        return found
    tarball = Path("/usr/local/go/bin/go")
    return str(tarball) if tarball.exists() else None


def ensure_binary(*, log: Path, version: str = VERSION) -> Path:
    """The toxiproxy server binary of `version`, built with `go install` unless already in the
    cache. Safe against an interrupted earlier build and against concurrent builders."""
    binary = binary_path(version)
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(binary.parent / ".lock"):
        if binary.exists():  # another process built it meanwhile
            return binary
        go = find_go()
        if go is None:
            raise InfraError(
                "Go is not installed (Debian package `golang-go`): it builds toxiproxy"
            )
        say(f"building toxiproxy {version} with go install into {binary} (once; log {log})")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=binary.parent) as staging:
            run_logged(
                [go, "install", f"{PACKAGE}@v{version}"],
                log=log,
                what=f"go install toxiproxy {version}",
                env={**os.environ, "GOBIN": staging, "CGO_ENABLED": "0"},
                timeout=1200,
            )
            (Path(staging) / "server").rename(binary)
        say(f"built toxiproxy in {time.monotonic() - started:.0f} s")
    return binary


class Toxiproxy:
    """A toxiproxy server on 127.0.0.1:`port`, its log in `root`."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.log = root / "toxiproxy.log"
        self.api = httpx.Client(base_url=f"http://{HOST}:{port}", timeout=10)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (building it first if need be) and return once its API answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        binary = ensure_binary(log=self.root / "build.log")
        with self.log.open("ab") as log:
            process = self._process = subprocess.Popen(
                [str(binary), "-host", HOST, "-port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            Deadline(START_TIMEOUT).poll(
                self._answers,
                what=f"waiting for toxiproxy on {HOST}:{self.port}",
                failed=lambda: None if process.poll() is None else "the server exited",
            )
        except InfraError as error:
            raise InfraError(f"{error}; log {self.log}:\n{log_tail(self.log)}") from None

    def _answers(self) -> bool:
        try:
            return self.api.get("/version").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.api.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def proxy(self, name: str, *, listen: int, upstream: str) -> Proxy:
        """A new proxy listening on 127.0.0.1:`listen` forwarding to `upstream` (host:port)."""
        created = self.api.post(
            "/proxies",
            json={"name": name, "listen": f"{HOST}:{listen}", "upstream": upstream},
        )
        _check(created, f"creating proxy {name}")
        return Proxy(self.api, name, listen)


class Proxy:
    """One proxy of a toxiproxy server, and the toxics that make its network misbehave."""

    def __init__(self, api: httpx.Client, name: str, listen: int) -> None:
        self._api = api
        self.name = name
        self.port = listen

    def add(self, kind: str, *, stream: str = "downstream", **attributes: Any) -> str:
        """Add a toxic of type `kind` (latency, reset_peer, timeout, ...) on `stream`
        (downstream: from the server to the client) and return its name."""
        name = f"{kind}-{stream}"
        added = self._api.post(
            f"/proxies/{self.name}/toxics",
            json={"name": name, "type": kind, "stream": stream, "attributes": attributes},
        )
        _check(added, f"adding {name} to {self.name}")
        return name

    def remove(self, toxic: str) -> None:
        _check(self._api.delete(f"/proxies/{self.name}/toxics/{toxic}"), f"removing {toxic}")

    @contextlib.contextmanager
    def toxic(self, kind: str, *, stream: str = "downstream", **attributes: Any) -> Iterator[None]:
        """The toxic for the duration of the block."""
        name = self.add(kind, stream=stream, **attributes)
        try:
            yield
        finally:
            self.remove(name)


def _check(response: httpx.Response, what: str) -> None:
    if response.is_error:
        raise InfraError(f"toxiproxy: {what}: {response.status_code} {response.text.strip()}")
