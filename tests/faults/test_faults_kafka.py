"""The Kafka broker killed with SIGKILL under a steady trickle of orders, on the servers topology
(one process per service behind nginx, PostgreSQL and Redis the shared test servers), kept
down for 30 s and started again. Orders are still accepted meanwhile (they wait in the outboxes);
readiness says the log is away (503 naming it) and comes back by itself; afterwards every order
is confirmed within a bound, its payment succeeded, and nothing valid was dead-lettered.

The broker killed is the only one of a cluster of the test's own: the shared one is never
stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import AgoraProcess, eventually, product, servers_env
from own_kafka import OwnKafka, own_kafka
from steady import SETTLE, Trickle, assert_every_order_confirmed, readiness

__all__ = ["own_kafka"]

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
    # A JVM and a process per service to start on two cores, then the outage and the settling.
    pytest.mark.timeout(600),
]

OUTAGE = 30.0
"""Seconds the broker stays down before it is started again."""


@pytest.fixture
def agora(
    request: pytest.FixtureRequest, own_kafka: OwnKafka, tmp_path: Path
) -> Iterator[AgoraProcess]:
    env = {**servers_env(request), **own_kafka.env()}
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 100_000)], env=env).start()
    yield process
    process.stop()


def test_the_broker_killed_for_30_s_loses_no_order(
    agora: AgoraProcess, own_kafka: OwnKafka
) -> None:
    assert readiness(agora).status_code == 200
    auth = agora.headers("trickle")
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        own_kafka.kill()
        killed_at = own_kafka.killed_at
        assert killed_at is not None
        down = eventually(
            lambda: (r := readiness(agora)).status_code == 503 and r,
            timeout=OUTAGE,
            interval=0.2,
            what="the gateway's readiness to fail",
        )
        unready_after = time.monotonic() - killed_at
        problem = down.json()
        assert down.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == "/problems/not-ready"
        assert int(down.headers["Retry-After"]) > 0
        assert {u["dependency"] for u in problem["unavailable"]} >= {"log"}, problem
        # Noticed once a publish has waited the request timeout (10 s) for its acknowledgement.
        assert unready_after < 20, unready_after
        # The services cannot read their consumers' lag: the gateway's health says so.
        assert agora.client.get("/healthz", timeout=30).json()["status"] == "degraded"
        accepted_before = len(trickle.accepted)
        # The outage lasts as long as the scenario says, the trickle running all along.
        threading.Event().wait(max(0.0, killed_at + OUTAGE - time.monotonic()))
        accepted_away = len(trickle.accepted) - accepted_before
        own_kafka.start()
        back = time.monotonic()
        eventually(
            lambda: readiness(agora).status_code == 200,
            timeout=SETTLE,
            interval=0.2,
            what="the gateway's readiness to come back",
        )
        ready_after = time.monotonic() - back
        count = len(trickle.accepted)
        eventually(lambda: len(trickle.accepted) >= count + 20, timeout=SETTLE, what="orders again")
    # Placing an order needs the database only: the log's outage never reaches the client.
    assert trickle.refused == {}, trickle.refused
    assert accepted_away > 0
    assert ready_after < 60, ready_after
    settling = time.monotonic()
    assert_every_order_confirmed(agora, trickle.accepted)
    print(
        f"unready {unready_after:.1f} s after the kill, ready {ready_after:.1f} s after the "
        f"restart; {accepted_away} orders accepted while away, {len(trickle.accepted)} in all, "
        f"final and checked {time.monotonic() - settling:.1f} s after the trickle stopped"
    )
