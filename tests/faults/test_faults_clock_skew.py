"""Clocks of processes off by minutes, on the servers topology: identity's clock runs 3 minutes
ahead of the others and orders' 4 minutes ahead, with libfaketime preloaded into those
processes only (`agora up`'s `process_env`; every other process, the test among them, keeps
the host's clock).

First the skew is shown to be there: the tokens identity issues say they were issued 3 minutes
from now, the orders that orders writes that they were placed 4 minutes from now. Then:

- tokens: every verifier (the gateway, orders) accepts identity's tokens, whose `iat` is in its
  future but within the skew tolerated (`MAX_ISSUER_SKEW`), and the gateway reports how far
  ahead identity's clock runs (`agora_peer_clock_ahead_seconds{peer="identity"}`, a warning in
  its log); inventory, whose clock is right, reports orders' from the events it consumes;
- holds: a hold is judged by its owner's clock (inventory's): orders, whose clock says the hold
  of an order has long expired, still lets the order be paid and confirms it; an order left
  unpaid expires when its hold ends by inventory's clock, not before."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import jwt
import orjson
import pytest

from agora.infra.faketime import skewed_env
from harness import AgoraProcess, Metrics, parse_metrics, product, servers_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.redis,
]

IDENTITY_AHEAD = 180.0
ORDERS_AHEAD = 240.0
HOLD = 20.0
"""Seconds an order's stock is held: far less than orders' clock is ahead."""


@pytest.fixture
def agora(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AgoraProcess]:
    try:
        identity, orders = skewed_env(IDENTITY_AHEAD), skewed_env(ORDERS_AHEAD)
    except FileNotFoundError as missing:
        pytest.fail(f"{missing} (`agora infra up` installs it)")
    env = {
        **servers_env(request),
        "AGORA_HOLD_SECONDS": str(HOLD),
        "AGORA_PROCESS_ENV": orjson.dumps({"identity": identity, "orders": orders}).decode(),
    }
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 1_000)], env=env).start()
    yield process
    process.stop()


def ahead_of_us(timestamp: float) -> float:
    return timestamp - time.time()


def peers_ahead(metrics: Metrics) -> dict[str, float]:
    return {labels["peer"]: value for labels, value in metrics["agora_peer_clock_ahead_seconds"]}


def service_metrics(
    agora: AgoraProcess, service: str
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The metrics of a service's process (on loopback, where the supervisor's log of it says)."""
    (log,) = (agora.data_dir / "logs").glob(f"{service}-*.log")
    port = int(log.stem.rsplit("-", 1)[1])
    return parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def test_tokens_and_holds_survive_clocks_minutes_apart(agora: AgoraProcess) -> None:
    auth = agora.headers("skewed")
    token = auth["Authorization"].removeprefix("Bearer ")
    issued = jwt.decode(token, options={"verify_signature": False})["iat"]
    # The skew is there: identity's clock is ahead of ours (the negative control).
    assert IDENTITY_AHEAD - 15 < ahead_of_us(issued) < IDENTITY_AHEAD + 15

    # Verified by the gateway and by orders (both behind identity's clock), not refused.
    listed = agora.client.get("/api/orders", headers=auth)
    assert listed.status_code == 200, listed.text
    reported = peers_ahead(agora.metrics())
    assert IDENTITY_AHEAD - 15 < reported["identity"] < IDENTITY_AHEAD + 15, reported

    paid_later = agora.place([("widget", 1)], token=None, customer="skewed")
    left_unpaid = agora.place([("widget", 1)], token=None, customer="skewed")
    assert paid_later.status_code == left_unpaid.status_code == 202, paid_later.text
    placed = datetime.fromisoformat(paid_later.json()["created_at"]).timestamp()
    # orders' clock is ahead of ours: the order says it was placed minutes from now.
    assert ORDERS_AHEAD - 15 < ahead_of_us(placed) < ORDERS_AHEAD + 15

    first = agora.wait_status(paid_later.json()["id"], "RESERVED", timeout=30)
    second = agora.wait_status(left_unpaid.json()["id"], "RESERVED", timeout=30)
    expires = datetime.fromisoformat(second["hold_expires_at"]).timestamp()
    # Held by inventory's clock (ours) for HOLD seconds; by orders' clock already past.
    assert 0 < ahead_of_us(expires) <= HOLD + 1
    assert placed > expires
    # Inventory saw orders' OrderPlaced from minutes ahead, and says so.
    seen = peers_ahead(service_metrics(agora, "inventory"))
    assert ORDERS_AHEAD - 15 < seen["orders"] < ORDERS_AHEAD + 15, seen
    assert seen.get("catalog", 0.0) < 5, seen

    paid = agora.client.post(
        f"/api/orders/{first['id']}/pay", json={"payment_token": "tok_visa"}, headers=auth
    )
    assert paid.status_code == 202, paid.text
    assert agora.wait_status(first["id"], timeout=30)["status"] == "CONFIRMED"

    # Not expired before its hold ends by the owner's clock, and expired once it has.
    while ahead_of_us(expires) > 1.0:
        assert agora.order(second["id"])["status"] == "RESERVED"
        threading.Event().wait(0.5)  # a look every half second until the hold's end
    assert agora.wait_status(second["id"], timeout=HOLD + 30)["status"] == "EXPIRED"
    assert ahead_of_us(expires) <= 0
