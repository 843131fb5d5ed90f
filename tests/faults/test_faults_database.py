"""PostgreSQL killed with SIGKILL under a steady trickle of orders, on the servers topology (one
process per service behind the gateway, Kafka and Redis the shared test servers), kept down for
about 15 s and started again. Afterwards every order is final and confirmed within a bound,
nothing valid was dead-lettered, no order was charged without being confirmed, and readiness
said what was going on: 503 while the database was away, 200 once it was back.

The PostgreSQL killed is one of the test's own: the shared test servers are never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from harness import FINAL, AgoraProcess, eventually, product, servers_env
from own_postgres import OwnPostgres, own_postgres

__all__ = ["own_postgres"]

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
]

OUTAGE = 15.0
"""Seconds PostgreSQL stays down."""

SETTLE = 120.0
"""Seconds within which every order must be final once PostgreSQL is back."""

PACE = 0.15
"""Seconds between two orders of the trickle."""


class Trickle:
    """A client placing one order every PACE seconds in a thread of its own. An order whose
    POST fails (no answer, or 5xx while the database is away) is sent again with the same
    Idempotency-Key until it is accepted, as a client should."""

    def __init__(self, agora: AgoraProcess, auth: dict[str, str]) -> None:
        self._agora = agora
        self._auth = auth
        self._stop = threading.Event()
        self.accepted: list[str] = []
        self.refused: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name="order trickle", daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=self._agora.base_url, timeout=10) as client:
            while not self._stop.is_set():
                key = str(uuid.uuid4())
                body = {
                    "items": [{"product_id": "widget", "quantity": 1}],
                    "payment_token": "tok_visa",
                }
                while not self._stop.is_set():
                    try:
                        response = client.post(
                            "/api/orders", json=body, headers={"Idempotency-Key": key, **self._auth}
                        )
                    except httpx.TransportError:
                        self.refused[0] = self.refused.get(0, 0) + 1
                    else:
                        if response.status_code == 202:
                            self.accepted.append(response.json()["id"])
                            break
                        self.refused[response.status_code] = (
                            self.refused.get(response.status_code, 0) + 1
                        )
                    self._stop.wait(PACE)  # a client's pause before it tries again
                self._stop.wait(PACE)  # the trickle's pace


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


def readiness(agora: AgoraProcess) -> httpx.Response:
    return agora.client.get("/readyz", timeout=15)


def dead_letters(agora: AgoraProcess) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [sys.executable, "-m", "agora", "dlt", "list", "--json", "--data-dir", str(agora.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **agora.env},
    )
    return [orjson.loads(line) for line in listed.stdout.splitlines() if line.strip()]


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

    def all_final() -> dict[str, str] | None:
        statuses = {order_id: agora.order(order_id)["status"] for order_id in orders}
        return statuses if set(statuses.values()) <= FINAL else None

    statuses = eventually(all_final, timeout=SETTLE, interval=1.0, what="every order final")
    # Valid card, stock to spare, a hold of minutes: every order must be confirmed.
    assert set(statuses.values()) == {"CONFIRMED"}, statuses
    for order_id in orders:
        payment = agora.client.get(f"/api/payments/{order_id}", headers=auth).json()
        assert payment["state"] == "SUCCEEDED", payment
    letters = dead_letters(agora)
    assert letters == [], letters
    assert ready_after < 60, ready_after
