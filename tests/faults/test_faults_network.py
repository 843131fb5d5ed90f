"""The network between the services and PostgreSQL made slow, lossy and silent under a steady
trickle of orders, on the servers topology (one process per service behind nginx, Kafka
and Redis the shared test servers). Every service reaches the database through a toxiproxy of
the test's own, which in turn adds latency to every answer, resets every connection, then stops
forwarding anything (a blackhole), each for a few seconds.

While it lasts, a request succeeds slowly or answers 503 problem+json with Retry-After, never a
500; afterwards every order is confirmed within a bound and nothing is dead-lettered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.infra.toxiproxy import Proxy, Toxiproxy
from agora.runtime.supervisor import LOOPBACK, free_port
from harness import AgoraProcess, eventually, product, servers_env
from own_postgres import OwnPostgres, own_postgres
from own_toxiproxy import toxiproxy
from steady import SETTLE, Trickle, assert_every_order_confirmed, assert_told_to_retry

__all__ = ["own_postgres", "toxiproxy"]

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
    # agora up waits up to 300 s for the servers topology to start (AgoraProcess.start)
    pytest.mark.timeout(600),
]

FAULT = 6.0
"""Seconds each fault lasts."""

LATENCY_MS = 100
"""Added to every answer PostgreSQL sends while the network is slow."""


@pytest.fixture
def network(own_postgres: OwnPostgres, toxiproxy: Toxiproxy) -> Proxy:
    return toxiproxy.proxy(
        "postgres", listen=free_port(LOOPBACK), upstream=f"{LOOPBACK}:{own_postgres.port}"
    )


@pytest.fixture
def agora(
    request: pytest.FixtureRequest, own_postgres: OwnPostgres, network: Proxy, tmp_path: Path
) -> Iterator[AgoraProcess]:
    through_proxy = own_postgres.url_template().replace(
        f":{own_postgres.port}/", f":{network.port}/"
    )
    env = {**servers_env(request), "AGORA_DATABASE_URL_TEMPLATE": through_proxy}
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 100_000)], env=env).start()
    yield process
    process.stop()


def test_a_slow_lossy_then_silent_network_to_postgres_loses_no_order(
    agora: AgoraProcess, network: Proxy
) -> None:
    auth = agora.headers("trickle")
    pause = threading.Event()
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        with network.toxic("latency", latency=LATENCY_MS):
            slow_from = len(trickle.accepted)
            pause.wait(FAULT)
            accepted_while_slow = len(trickle.accepted) - slow_from
        with network.toxic("reset_peer", timeout=0):
            refused_before = sum(trickle.refused.values())
            pause.wait(FAULT)
            refused_while_reset = sum(trickle.refused.values()) - refused_before
        with network.toxic("timeout", timeout=0):
            pause.wait(FAULT)
        before = len(trickle.accepted)
        eventually(
            lambda: len(trickle.accepted) >= before + 20, timeout=SETTLE, what="orders again"
        )
    assert accepted_while_slow >= 1, accepted_while_slow  # slow, not stopped
    assert refused_while_reset >= 1, trickle.refused  # the resets reached the services
    assert set(trickle.unavailable) <= {"/problems/database-unavailable"}, trickle.unavailable
    assert_told_to_retry(trickle)
    assert_every_order_confirmed(agora, trickle.accepted)
