"""Fixtures shared by every kind of test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agora.infra import InfraSettings, ensure_up
from agora.runtime.runtime import SERVICE_NAMES
from harness import AgoraProcess


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
