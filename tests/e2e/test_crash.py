"""Crash safety: kill -9 `agora up` with orders in flight, start it again on the same data, and
every order still reaches a final state with every effect applied exactly once."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import FINAL, AgoraProcess, eventually, product

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INITIAL = {"alpha": 300, "beta": 300}
ORDERS = 150
KILL_AFTER = 50
BUYERS = 10
TOKENS = ["tok_visa", "tok_visa", "tok_chargeDeclined", "tok_processing_error"]


Request = tuple[str, dict[str, str], dict[str, Any]]  # key, the buyer's Authorization, body


def order_requests(agora: AgoraProcess) -> list[Request]:
    shapes = itertools.cycle([[("alpha", 1)], [("beta", 2)], [("alpha", 2), ("beta", 1)]])
    tokens = itertools.cycle(TOKENS)
    return [
        (
            str(uuid.uuid4()),
            agora.headers(f"crash-{n % BUYERS}"),
            {
                "items": [{"product_id": p, "quantity": q} for p, q in next(shapes)],
                "payment_token": next(tokens),
            },
        )
        for n in range(ORDERS)
    ]


async def send_and_kill(agora: AgoraProcess, requests: list[Request]) -> int:
    """Send every request, 20 at a time; kill -9 the server after KILL_AFTER answers."""
    answered = 0
    limit = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=agora.base_url, timeout=10) as client:

        async def send(key: str, auth: dict[str, str], body: dict[str, Any]) -> None:
            nonlocal answered
            async with limit:
                try:
                    await client.post(
                        "/api/orders", json=body, headers={"Idempotency-Key": key, **auth}
                    )
                except httpx.TransportError:
                    return  # the server is gone: the client will retry with the same key
                answered += 1
                if answered == KILL_AFTER:
                    agora.kill()

        await asyncio.gather(*(send(*request) for request in requests))
    return answered


def place_again(agora: AgoraProcess, key: str, auth: dict[str, str], body: dict[str, Any]) -> str:
    """A client's retry after the crash: same key, same body, until the order is known."""

    def attempt() -> str | None:
        response = agora.client.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, **auth}
        )
        if response.status_code == 409:  # a claim left by the crash, not yet timed out
            return None
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    return eventually(attempt, timeout=30, interval=0.2, what=f"order for key {key}")


def test_kill_9_mid_saga_loses_and_duplicates_nothing(
    agora_factory: Callable[..., AgoraProcess],
) -> None:
    seed = [product(name, units) for name, units in INITIAL.items()]
    agora = agora_factory(seed, AGORA_IDEMPOTENCY_IN_FLIGHT_SECONDS="2")
    requests = order_requests(agora)

    answered = asyncio.run(send_and_kill(agora, requests))
    assert KILL_AFTER <= answered < ORDERS, "the kill must land while orders are in flight"

    agora.start()
    order_ids = [place_again(agora, *request) for request in requests]
    assert len(set(order_ids)) == ORDERS, "one order per idempotency key"

    def all_final() -> list[dict[str, Any]] | None:
        orders = [agora.order(order_id) for order_id in order_ids]
        return orders if all(o["status"] in FINAL for o in orders) else None

    orders = eventually(all_final, timeout=90, interval=0.5, what="every order final")
    assert {o["status"] for o in orders} <= {"CONFIRMED", "CANCELLED"}

    sold: Counter[str] = Counter()
    for order in orders:
        if order["status"] == "CONFIRMED":
            for item in order["items"]:
                sold[item["product_id"]] += item["quantity"]
    for name, units in INITIAL.items():
        stock = eventually(
            lambda name=name: (s := agora.stock(name))["reserved"] == 0 and s,
            what=f"{name} holds settled",
        )
        assert stock["sold"] == sold[name], f"{name}: each confirmed line sold exactly once"
        assert stock["available"] + stock["sold"] == units, f"{name}: stock conserved"

    for order, (_, _, body) in zip(orders, requests, strict=True):
        payment = agora.client.get(f"/api/payments/{order['id']}", headers=agora.admin).json()
        if order["status"] == "CONFIRMED":
            assert payment["state"] == "SUCCEEDED"
            assert [a["outcome"] for a in payment["attempts"]].count("succeeded") == 1
        else:
            assert body["payment_token"] == "tok_chargeDeclined"
            assert payment["state"] == "FAILED"

    def one_email_each() -> bool:
        for n in range(BUYERS):
            buyer = f"crash-{n}"
            mailed = [m["order_id"] for m in agora.messages(buyer) if m["order_id"] is not None]
            theirs = [o["id"] for o in orders if o["customer_id"] == agora.user_id(buyer)]
            if sorted(mailed) != sorted(theirs):
                return False
        return True

    assert eventually(one_email_each, timeout=30, interval=0.5, what="one email per order")
