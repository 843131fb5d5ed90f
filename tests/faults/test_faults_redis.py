"""Redis killed with SIGKILL under a steady trickle of orders, on the servers topology (one
process per service behind nginx, PostgreSQL and Kafka the shared test servers), kept
down a few seconds and started again empty, as a Redis that saves nothing comes back.

Revoked sessions fail closed (docs/reliability.md, "Redis: degrade, never fail"): while Redis is
away, and until identity has published its database's revocations into the new one, every
authenticated request answers 503 `revocations-unavailable`. So the trickle is refused for a
while, told to retry, and then goes on; a token logged out before the kill is never accepted
again, on any process; every order ends confirmed and nothing is dead-lettered.

The Redis killed is one of the test's own: the shared test servers are never stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import AgoraProcess, eventually, product, servers_env
from own_redis import OwnRedis, own_redis
from steady import SETTLE, Trickle, assert_every_order_confirmed, assert_told_to_retry, readiness

__all__ = ["own_redis"]

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
    # agora up waits up to 300 s for the servers topology to start (AgoraProcess.start)
    pytest.mark.timeout(600),
]

OUTAGE = 5.0
"""Seconds Redis stays down."""


@pytest.fixture
def agora(
    request: pytest.FixtureRequest, own_redis: OwnRedis, tmp_path: Path
) -> Iterator[AgoraProcess]:
    env = {**servers_env(request), "AGORA_REDIS_URL": own_redis.url}
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 100_000)], env=env).start()
    yield process
    process.stop()


def test_a_redis_killed_and_restarted_empty_keeps_revoked_tokens_refused(
    agora: AgoraProcess, own_redis: OwnRedis
) -> None:
    revoked = agora.headers("logged-out")
    assert agora.client.post("/api/auth/logout", headers=revoked).status_code == 204
    seen: dict[int, int] = {}

    def revoked_is_refused() -> bool:
        """The logged-out token's answer: 401, or 503 while revocations cannot be read."""
        response = agora.client.get("/api/auth/me", headers=revoked)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (401, 503), response.text
        if response.status_code == 503:
            assert response.json()["type"] == "/problems/revocations-unavailable"
            assert int(response.headers["Retry-After"]) > 0
        return response.status_code == 401

    assert revoked_is_refused()
    auth = agora.headers("trickle")
    with Trickle(agora, auth) as trickle:
        eventually(lambda: len(trickle.accepted) >= 10, timeout=60, what="orders flowing")
        own_redis.kill()
        killed = time.monotonic()
        # Redis is shared state, not a record: the processes stay ready without it.
        assert readiness(agora).status_code == 200
        while time.monotonic() < killed + OUTAGE:
            revoked_is_refused()
            threading.Event().wait(0.2)
        own_redis.start()
        back = time.monotonic()
        eventually(
            revoked_is_refused, timeout=30, interval=0.1, what="the token refused as revoked"
        )
        republished = time.monotonic() - back
        before = len(trickle.accepted)
        eventually(
            lambda: len(trickle.accepted) >= before + 20, timeout=SETTLE, what="orders again"
        )
    assert seen.get(503, 0) >= 1, seen  # the outage was seen: revocations could not be read
    assert_told_to_retry(trickle)
    assert set(trickle.unavailable) <= {"/problems/revocations-unavailable"}, trickle.unavailable
    assert_every_order_confirmed(agora, trickle.accepted)
    assert republished < 10, republished
