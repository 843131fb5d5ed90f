"""Fixtures shared by every kind of test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agora.infra import InfraSettings, ensure_up
from agora.runtime.runtime import SERVICE_NAMES
from harness import AgoraProcess

# Tests set every setting they depend on: none leaks in from the shell running them (after an
# `eval "$(agora infra up)"`, say), neither into Settings() here nor into the processes started.
# AGORA_SCREENSHOTS is the tests' own switch, not a setting (tests/browser).
for _name in [name for name in os.environ if name.startswith("AGORA_")]:
    if _name != "AGORA_SCREENSHOTS":
        del os.environ[_name]


@pytest.fixture
def agora_factory(tmp_path: Path) -> Iterator[Callable[..., AgoraProcess]]:
    """Start `agora up` processes (stopped after the test): `agora_factory(seed, **env)`."""
    started: list[AgoraProcess] = []

    def start(seed: list[dict[str, Any]], name: str = "data", **env: str) -> AgoraProcess:
        agora = AgoraProcess(tmp_path / name, seed=seed, env=env).start()
        started.append(agora)
        return agora

    yield start
    for agora in started:
        agora.stop()


@pytest.fixture(scope="session")
def servers() -> InfraSettings:
    """PostgreSQL, Redis and Apache Kafka on 127.0.0.1, started (or found running) by the
    project's own `agora.infra`, with a database per service. They stay up after the session:
    `agora infra down` stops them. A server that cannot start fails the tests that need it."""
    return ensure_up(databases=SERVICE_NAMES)
