"""Clocks of processes off by minutes, on the servers topology: identity's clock runs 3 minutes
ahead of the others and orders' 4 minutes ahead, with libfaketime preloaded into those
processes only (`agora up`'s `process_env`; every other process, the test among them, keeps
the host's clock).

First the skew is shown to be there: the tokens identity issues say they were issued 3 minutes
from now, the orders that orders writes that they were placed 4 minutes from now. Then:

- tokens: every verifier (catalog, orders: each process checks the tokens it is sent)
  accepts identity's tokens, whose `iat` is in its future but within the skew tolerated
  (`MAX_ISSUER_SKEW`), and catalog, whose clock is right, reports how far ahead identity's
  clock runs (`agora_peer_clock_ahead_seconds{peer="identity"}`, a warning in its log);
  inventory reports orders' from the events it consumes;
- holds: a seat hold is judged by its owner's clock (inventory's): orders, whose clock says the
  hold of an order has long ended, still lets the order be paid and confirms it (the seat
  sold); an order left unpaid keeps its seat held until its hold ends by inventory's clock, not
  before, then expires and gives the seat back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import jwt
import orjson
import pytest

from agora.infra.faketime import skewed_env
from harness import AgoraProcess, Metrics, eventually, parse_metrics, product, servers_env
from steady import dead_letters

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
"""Seconds an order's seats are held (the demo concert's hold, capped): far less than orders'
clock is ahead."""


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


def service_metrics(agora: AgoraProcess, service: str) -> Metrics:
    """The metrics of a service's process (on loopback, where the supervisor's log of it says)."""
    (log,) = (agora.data_dir / "logs").glob(f"{service}-*.log")
    port = int(log.stem.rsplit("-", 1)[1])
    return parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def demo_session(agora: AgoraProcess) -> str:
    """The first session of the concert `agora up` seeds, once its seats are on sale."""
    listed = agora.client.get("/api/events", params={"q": "demo concert"}).json()["items"]
    (event,) = [e for e in listed if e["title"] == "Agora demo concert"]
    session_id = str(agora.client.get(f"/api/events/{event['id']}").json()["sessions"][0]["id"])
    eventually(lambda: seat(agora, session_id, "main-E-10") == "available", what="seats on sale")
    return session_id


def seat(agora: AgoraProcess, session_id: str, seat_id: str) -> str | None:
    found = agora.client.get(f"/api/sessions/{session_id}/seats")
    return str(found.json()["seats"][seat_id]) if found.status_code == 200 else None


def hold_seat(agora: AgoraProcess, auth: dict[str, str], session_id: str, seat_id: str) -> str:
    """An order for the seat, placed without paying; retried while orders has not yet heard
    that the session is on sale. Its id, once it is RESERVED."""
    body = {"tickets": [{"session_id": session_id, "seat_ids": [seat_id]}]}
    key = str(uuid.uuid4())

    def accepted() -> httpx.Response | None:
        response = agora.client.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, **auth}
        )
        refused = response.status_code in (409, 422) and response.json()["type"] in (
            "/problems/unknown-session",
            "/problems/sales-not-open",
        )
        return None if refused else response

    response = eventually(accepted, timeout=60, what="orders to hear of the session's sales")
    assert response.status_code == 202, response.text
    order_id = str(response.json()["id"])
    eventually(
        lambda: (
            agora.client.get(f"/api/orders/{order_id}", headers=auth).json()["status"] == "RESERVED"
        ),
        timeout=30,
        what=f"order {order_id} reserved",
    )
    return order_id


def test_tokens_and_holds_survive_clocks_minutes_apart(agora: AgoraProcess) -> None:
    auth = agora.headers("skewed")
    token = auth["Authorization"].removeprefix("Bearer ")
    issued = jwt.decode(token, options={"verify_signature": False})["iat"]
    # The skew is there: identity's clock is ahead of ours (the negative control).
    assert IDENTITY_AHEAD - 15 < ahead_of_us(issued) < IDENTITY_AHEAD + 15

    # Verified by catalog (behind identity's clock) and by orders, not refused.
    listed = agora.client.get("/api/orders", headers=auth)
    assert listed.status_code == 200, listed.text
    browsed = agora.client.get("/api/products", headers=auth)  # the token checked at the door
    assert browsed.status_code == 200, browsed.text
    reported = peers_ahead(service_metrics(agora, "catalog"))
    assert IDENTITY_AHEAD - 15 < reported["identity"] < IDENTITY_AHEAD + 15, reported

    session_id = demo_session(agora)
    paid_later = hold_seat(agora, auth, session_id, "main-E-10")
    left_unpaid = hold_seat(agora, auth, session_id, "main-E-11")
    order = agora.client.get(f"/api/orders/{left_unpaid}", headers=auth).json()
    placed = datetime.fromisoformat(order["created_at"]).timestamp()
    expires = datetime.fromisoformat(order["hold_expires_at"]).timestamp()
    # orders' clock is ahead of ours: the order says it was placed minutes from now.
    assert ORDERS_AHEAD - 15 < ahead_of_us(placed) < ORDERS_AHEAD + 15
    # Held by inventory's clock (ours) for HOLD seconds; by orders' clock already past.
    assert 0 < ahead_of_us(expires) <= HOLD + 1
    assert placed > expires
    # Inventory heard orders' OrderPlaced from minutes ahead, and says so.
    seen = peers_ahead(service_metrics(agora, "inventory"))
    assert ORDERS_AHEAD - 15 < seen["orders"] < ORDERS_AHEAD + 15, seen
    assert seen.get("catalog", 0.0) < 5, seen

    paid = agora.client.post(
        f"/api/orders/{paid_later}/pay", json={"payment_token": "tok_visa"}, headers=auth
    )
    assert paid.status_code == 202, paid.text
    eventually(
        lambda: (
            agora.client.get(f"/api/orders/{paid_later}", headers=auth).json()["status"]
            == "CONFIRMED"
        ),
        timeout=30,
        what="the order paid after its hold had ended by orders' clock confirmed",
    )
    assert eventually(lambda: seat(agora, session_id, "main-E-10") == "sold", what="sold")

    # Not expired before its hold ends by the owner's clock, and expired once it has.
    while ahead_of_us(expires) > 1.0:
        status = agora.client.get(f"/api/orders/{left_unpaid}", headers=auth).json()["status"]
        assert (status, seat(agora, session_id, "main-E-11")) == ("RESERVED", "held")
        threading.Event().wait(0.5)  # a look every half second until the hold's end
    eventually(
        lambda: (
            agora.client.get(f"/api/orders/{left_unpaid}", headers=auth).json()["status"]
            == "EXPIRED"
        ),
        timeout=HOLD + 30,
        what="the unpaid order expired",
    )
    assert ahead_of_us(expires) <= 0
    assert eventually(lambda: seat(agora, session_id, "main-E-11") == "available", what="freed")
    # Nothing valid dead-lettered, and every invariant kept across the services.
    assert dead_letters(agora) == []
    agora.check()
