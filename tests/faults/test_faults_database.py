"""PostgreSQL going away under a steady trickle of orders, on the servers topology (one process
per service behind nginx, Kafka and Redis the shared test servers): killed with SIGKILL,
kept down for about 15 s and started again; or restarted by an operator (`pg_ctl restart -m
fast`, every session ended). Afterwards every order is final and confirmed within a bound,
nothing valid was dead-lettered, `agora check` finds every invariant kept (no order charged
without being confirmed, stock conserved, outboxes published); readiness said what was going on
while the database was away.

The PostgreSQL is one of the test's own: the shared test servers are never stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import AgoraProcess, eventually, product, servers_env
from own_postgres import OwnPostgres, own_postgres
from steady import (
    SETTLE,
    Trickle,
    assert_every_order_confirmed,
    assert_told_to_retry,
    readiness,
)

__all__ = ["own_postgres"]

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
    # agora up waits up to 300 s for the servers topology to start (AgoraProcess.start)
    pytest.mark.timeout(600),
]

OUTAGE = 15.0
"""Seconds PostgreSQL stays down."""


@pytest.fixture
def agora(
    request: pytest.FixtureRequest, own_postgres: OwnPostgres, tmp_path: Path
) -> Iterator[AgoraProcess]:
    env = {
        **servers_env(request),
        "AGORA_DATABASE_URL_TEMPLATE": own_postgres.url_template(),
    }
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 100_000)], env=env).start()
    yield process
    process.stop()


def test_a_postgres_killed_for_15_s_loses_no_order(
    agora: AgoraProcess, own_postgres: OwnPostgres
) -> None:
    assert readiness(agora).status_code == 200
    auth = agora.headers("trickle")
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        own_postgres.kill()
        down = eventually(
            lambda: (r := readiness(agora)).status_code == 503 and r,
            timeout=OUTAGE,
            interval=0.2,
            what="the gateway's readiness to fail",
        )
        problem = down.json()
        assert down.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == "/problems/not-ready"
        assert int(down.headers["Retry-After"]) > 0
        assert {u["dependency"] for u in problem["unavailable"]} >= {"database"}
        assert own_postgres.killed_at is not None
        # The outage lasts as long as the scenario says, the trickle running all along.
        threading.Event().wait(max(0.0, own_postgres.killed_at + OUTAGE - time.monotonic()))
        own_postgres.start()
        back = time.monotonic()
        eventually(
            lambda: readiness(agora).status_code == 200,
            timeout=SETTLE,
            interval=0.2,
            what="the gateway's readiness to come back",
        )
        ready_after = time.monotonic() - back
        eventually(lambda: len(trickle.accepted) >= 10 + 20, timeout=SETTLE, what="orders again")
    orders = trickle.accepted
    assert len(orders) >= 30
    # What the client saw while the database was away: no answer, 5xx, or 409 (its own key's
    # first request still in flight), never a 4xx that blames the request.
    assert all(status in (0, 409) or status >= 500 for status in trickle.refused), trickle.refused
    assert_every_order_confirmed(agora, orders)  # and `agora check` finds every invariant kept
    assert ready_after < 60, ready_after


def test_a_fast_restart_of_postgres_loses_no_order(
    agora: AgoraProcess, own_postgres: OwnPostgres
) -> None:
    """Every pooled connection of every service is ended while the trickle writes: the services
    replace them, the client is told to retry, and the trickle goes on."""
    auth = agora.headers("trickle")
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        postmaster = own_postgres.server.pid()
        own_postgres.restart()
        assert own_postgres.server.pid() not in (None, postmaster)
        before = len(trickle.accepted)
        eventually(
            lambda: len(trickle.accepted) >= before + 20, timeout=SETTLE, what="orders again"
        )
    assert_told_to_retry(trickle)
    assert set(trickle.unavailable) <= {"/problems/database-unavailable"}, trickle.unavailable
    assert_every_order_confirmed(agora, trickle.accepted)
    assert readiness(agora).status_code == 200
