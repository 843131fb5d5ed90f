"""POST /api/orders is idempotent per Idempotency-Key (the IETF draft's semantics)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from agora.messaging import utcnow
from agora.services.orders import handlers

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_same_key_and_body_replays_the_first_order(api: Any) -> None:
    customer, key = api.new_customer(), api.new_key()

    first = await api.place(customer, [(api.product, 2)], key=key)
    again = await api.place(customer, [(api.product, 2)], key=key)

    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await api.orders_of(customer) == 1
    assert await api.key_rows(key) == 1
    assert await api.outbox_rows(key=first.json()["id"]) == 1  # one OrderPlaced, not two


async def test_a_replay_answers_the_order_as_it_is_now(api: Any) -> None:
    customer, key = api.new_customer(), api.new_key()
    first = await api.place(customer, [(api.product, 1)], key=key)
    assert first.status_code == 202, first.text
    await api.wait_status(first.json()["id"], "RESERVED")

    again = await api.place(customer, [(api.product, 1)], key=key)

    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "RESERVED"
    assert await api.orders_of(customer) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 3},
        {"product": "pour-over-kettle"},
        {"token": "tok_visa"},
    ],
    ids=["quantity", "product", "payment-token"],
)
async def test_same_key_with_another_body_is_refused(api: Any, change: dict[str, Any]) -> None:
    customer, key = api.new_customer(), api.new_key()
    first = await api.place(customer, [(api.product, 2)], key=key)
    assert first.status_code == 202, first.text
    outbox_before = await api.outbox_rows()

    other = await api.place(
        customer,
        [(change.get("product", api.product), change.get("quantity", 2))],
        key=key,
        token=change.get("token"),
    )

    api.problem(other, 422, "idempotency-key-reused")
    assert await api.orders_of(customer) == 1
    assert await api.outbox_rows() == outbox_before
    replay = await api.place(customer, [(api.product, 2)], key=key)
    assert replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
async def test_a_key_is_each_buyers_own(api: Any, same_body: bool) -> None:
    """Another buyer's key is not ours: both orders are placed, and each replay answers its own
    buyer's order (nobody learns which keys another buyer used)."""
    first_buyer, second_buyer, key = api.new_customer(), api.new_customer(), api.new_key()
    second_quantity = 2 if same_body else 3

    first = await api.place(first_buyer, [(api.product, 2)], key=key)
    second = await api.place(second_buyer, [(api.product, second_quantity)], key=key)

    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await api.orders_of(first_buyer) == 1
    assert await api.orders_of(second_buyer) == 1
    first_again = await api.place(first_buyer, [(api.product, 2)], key=key)
    second_again = await api.place(second_buyer, [(api.product, second_quantity)], key=key)
    assert first_again.json()["id"] == first.json()["id"]
    assert second_again.json()["id"] == second.json()["id"]
    assert first_again.headers["idempotent-replayed"] == "true"
    assert second_again.headers["idempotent-replayed"] == "true"
    assert await api.key_rows(key) == 2


async def test_a_key_in_flight_is_refused_with_409_and_retry_after(api: Any) -> None:
    """A first request still being processed holds the key: a second one is told to retry."""
    customer, key = api.new_customer(), api.new_key()
    command = handlers.PlaceOrder(
        customer_id=await api.user_id(customer), items=((api.product, 1),), payment_token=None
    )
    async with api.orders_service.unit_of_work() as uow:
        await uow.keys.claim(command.customer_id, key, command.fingerprint(), utcnow())
    outbox_before = await api.outbox_rows()

    response = await api.place(customer, [(api.product, 1)], key=key)

    api.problem(response, 409, "idempotency-key-in-flight")
    assert int(response.headers["retry-after"]) >= 1
    assert await api.orders_of(customer) == 0
    assert await api.outbox_rows() == outbox_before
    assert await api.key_rows(key) == 1, "the first request's claim stays"


async def test_a_claim_with_another_body_is_refused_as_reused(api: Any) -> None:
    customer, key = api.new_customer(), api.new_key()
    other = handlers.PlaceOrder(
        customer_id=await api.user_id(customer), items=((api.product, 9),), payment_token=None
    )
    async with api.orders_service.unit_of_work() as uow:
        await uow.keys.claim(other.customer_id, key, other.fingerprint(), utcnow())

    response = await api.place(customer, [(api.product, 1)], key=key)

    api.problem(response, 422, "idempotency-key-reused")
    assert await api.orders_of(customer) == 0


async def test_a_failed_request_releases_its_key(api: Any) -> None:
    """Nothing was placed for a refused body, so the key may be used again."""
    customer, key = api.new_customer(), api.new_key()

    refused = await api.place(customer, [("no-such-product", 1)], key=key)
    api.problem(refused, 422, "unknown-product")
    assert await api.key_rows(key) == 0

    placed = await api.place(customer, [(api.product, 1)], key=key)
    assert placed.status_code == 202, placed.text
    assert "idempotent-replayed" not in placed.headers
    assert await api.orders_of(customer) == 1


async def test_concurrent_requests_with_one_key_place_one_order(api: Any) -> None:
    customer, key = api.new_customer(), api.new_key()

    responses = await asyncio.gather(
        *(api.place(customer, [(api.product, 1)], key=key) for _ in range(20))
    )

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}, [(r.status_code, r.text) for r in responses]
    accepted = [r for r in responses if r.status_code == 202]
    assert accepted, statuses
    assert len({r.json()["id"] for r in accepted}) == 1
    created = [r for r in accepted if "idempotent-replayed" not in r.headers]
    assert len(created) == 1, "exactly one response created the order"
    for refused in (r for r in responses if r.status_code == 409):
        api.problem(refused, 409, "idempotency-key-in-flight")
        assert "retry-after" in refused.headers
    assert await api.orders_of(customer) == 1
    assert await api.outbox_rows(key=accepted[0].json()["id"]) == 1


async def test_different_keys_place_different_orders(api: Any) -> None:
    customer = api.new_customer()
    first = await api.place(customer, [(api.product, 1)])
    second = await api.place(customer, [(api.product, 1)])

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    assert await api.orders_of(customer) == 2
