from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import AgoraProcess, product

SAGA_SEED = [
    product("widget", 1_000),
    product("gadget", 1_000, "25.50"),
    product("scarce", 3),
]


@pytest.fixture(scope="module")
def agora(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgoraProcess]:
    """One `agora up` for a module's tests (each test uses its own customer and products)."""
    data_dir: Path = tmp_path_factory.mktemp("agora") / "data"
    process = AgoraProcess(data_dir, seed=SAGA_SEED).start()
    yield process
    process.stop()
