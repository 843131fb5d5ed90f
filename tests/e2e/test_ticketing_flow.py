"""The demo concert a fresh `agora up` seeds, bought over HTTP as a visitor finds it: the event
in the listing, its session's seat map, a named seat paid and sold, and an unpaid hold that
expires and gives its seat back."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import AgoraProcess, eventually, product, servers_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The demo event holds seats for 10 minutes; the installation's hold time caps it, so an
# unpaid order expires within seconds here.
HOLD_SECONDS = 5


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
    data_dir: Path = tmp_path_factory.mktemp("agora") / "data"
    env = servers_env(request) if request.param == "servers" else {}
    env["AGORA_HOLD_SECONDS"] = str(HOLD_SECONDS)
    process = AgoraProcess(data_dir, seed=[product("widget", 10)], env=env).start()
    yield process
    process.stop()


def demo_session(agora: AgoraProcess, index: int) -> str:
    """The id of the demo concert's session `index`, found as a visitor would: in the listing."""
    listed = agora.client.get("/api/events", params={"q": "demo concert"})
    assert listed.status_code == 200, listed.text
    (event,) = [e for e in listed.json()["items"] if e["title"] == "Agora demo concert"]
    assert event["store_id"] == "demo"
    assert [c["name"] for c in event["categories"]] == ["stalls", "standing"]
    found = agora.client.get(f"/api/events/{event['id']}")
    assert found.status_code == 200, found.text
    sessions = found.json()["sessions"]
    assert len(sessions) == 2
    assert all(s["sales"]["open"] for s in sessions), sessions
    today = dt.datetime.now(dt.UTC).date()
    starts = [dt.datetime.fromisoformat(s["starts_at"]) for s in sessions]
    assert [(s.date() - today).days for s in starts] == [30, 31]
    assert all((s.hour, s.minute, s.utcoffset()) == (20, 0, dt.timedelta(0)) for s in starts)
    return str(sessions[index]["id"])


def seat_map(agora: AgoraProcess, session_id: str) -> dict[str, Any] | None:
    """The session's seat map, once inventory has it on sale."""
    response = agora.client.get(f"/api/sessions/{session_id}/seats")
    if response.status_code != 200 or not response.json()["sales"]["open"]:
        return None
    return dict(response.json())


def seat_state(agora: AgoraProcess, session_id: str, seat: str, state: str) -> bool:
    found = seat_map(agora, session_id)
    return found is not None and found["seats"][seat] == state


def order_seat(
    agora: AgoraProcess, buyer: str, session_id: str, seat: str, token: str | None
) -> str:
    """Place an order for `seat`, retried while orders has not yet learned of the session's
    sales (the seed's events travel to it like any organizer's); returns the order's id."""
    body: dict[str, Any] = {"tickets": [{"session_id": session_id, "seat_ids": [seat]}]}
    if token is not None:
        body["payment_token"] = token
    key = str(uuid.uuid4())

    def accepted() -> httpx.Response | None:
        response = agora.client.post(
            "/api/orders",
            json=body,
            headers={"Idempotency-Key": key, **agora.headers(buyer)},
        )
        if response.status_code in (409, 422) and response.json()["type"] in (
            "/problems/unknown-session",
            "/problems/sales-not-open",
        ):
            return None
        return response

    response = eventually(accepted, what="orders to learn of the demo concert's sales")
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def order_status(agora: AgoraProcess, buyer: str, order_id: str) -> dict[str, Any]:
    response = agora.client.get(f"/api/orders/{order_id}", headers=agora.headers(buyer))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_demo_concert_sells_a_named_seat(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 0)
    first = eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    assert len(first["seats"]) == 200
    assert first["seats"]["main-A-1"] == "available"
    assert first["areas"] == {"standing": {"capacity": 100, "available": 100}}

    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    order_id = order_seat(agora, buyer, session_id, "main-E-10", token="tok_visa")
    confirmed = eventually(
        lambda: (
            (o := order_status(agora, buyer, order_id))["status"] != "PENDING"
            and o["status"] != "RESERVED"
            and o
        ),
        what=f"order {order_id} to end",
    )
    assert confirmed["status"] == "CONFIRMED", confirmed
    assert confirmed["total"] == "45.00"
    assert [p["seat_id"] for p in confirmed["places"]] == ["main-E-10"]
    eventually(
        lambda: seat_state(agora, session_id, "main-E-10", "sold"),
        what="the seat map to show main-E-10 sold",
    )


def test_an_unpaid_hold_on_the_demo_concert_expires(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 1)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")

    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    order_id = order_seat(agora, buyer, session_id, "main-F-1", token=None)
    reserved = eventually(
        lambda: (o := order_status(agora, buyer, order_id))["status"] != "PENDING" and o,
        what=f"order {order_id} to be reserved",
    )
    assert reserved["status"] in ("RESERVED", "EXPIRED"), reserved
    eventually(
        lambda: order_status(agora, buyer, order_id)["status"] == "EXPIRED",
        timeout=HOLD_SECONDS + 30,
        what=f"order {order_id} to expire",
    )
    eventually(
        lambda: seat_state(agora, session_id, "main-F-1", "available"),
        what="the seat map to give main-F-1 back",
    )
