"""A toxiproxy server of a test's own, to put between the services and a server and make the
network to it slow, lossy or silent (`agora.infra.toxiproxy`; built on first use)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.infra.toxiproxy import Toxiproxy
from agora.runtime.supervisor import LOOPBACK, free_port


@pytest.fixture
def toxiproxy() -> Iterator[Toxiproxy]:
    root = Path(tempfile.mkdtemp(prefix="agora-toxiproxy-"))
    server = Toxiproxy(root, free_port(LOOPBACK))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
