"""Fixtures shared by every kind of test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
