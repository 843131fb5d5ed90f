from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import AgoraProcess, product, servers_env

SAGA_SEED = [
    product("widget", 1_000),
    product("gadget", 1_000, "25.50"),
    product("scarce", 3),
]


@pytest.fixture(autouse=True)
def ledger_reconciled(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every scenario on a module's deployment, `agora ledger check` holds."""
    yield
    if "agora" in request.fixturenames:
        agora: AgoraProcess = request.getfixturevalue("agora")
        if agora.process is not None and agora.process.poll() is None:
            agora.ledger_check()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("embedded"),
        pytest.param("servers", marks=[pytest.mark.postgres, pytest.mark.kafka]),
    ],
)
def agora(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgoraProcess]:
    """One `agora up` for a module's tests, on each topology: everything in one process on the
    embedded default, and one process per service on the servers (each test uses its own
    customer and products)."""
    data_dir: Path = tmp_path_factory.mktemp("agora") / "data"
    env = servers_env(request) if request.param == "servers" else {}
    process = AgoraProcess(data_dir, seed=SAGA_SEED, env=env).start()
    yield process
    process.stop()
