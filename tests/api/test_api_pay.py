"""POST /api/orders/{id}/pay: only a RESERVED order placed without a token may be paid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agora.services.orders.domain import Line, Order

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def pending_order(api: Any) -> str:
    """A PENDING order written without its OrderPlaced, so no saga moves it on."""
    order = Order.place(await api.user_id("payer"), [Line(api.product, 1, Decimal("24.90"))], "EUR")
    order.events.clear()
    async with api.orders_service.unit_of_work() as uow:
        await uow.orders.add(order)
    return str(order.id)


async def test_paying_a_pending_order_is_refused(api: Any) -> None:
    order_id = await pending_order(api)
    outbox_before = await api.outbox_rows()

    response = await api.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=await api.auth("payer"),
    )

    problem = api.problem(response, 409, "payment-not-allowed")
    assert "PENDING" in problem["detail"]
    order = await api.load_order(order_id)
    assert order is not None
    assert (order.status, order.payment_token, order.payment_requested) == (
        "PENDING",
        None,
        False,
    )
    assert await api.outbox_rows() == outbox_before


async def test_paying_a_confirmed_order_is_refused(api: Any) -> None:
    placed = await api.place("payer", [(api.product, 1)], token="tok_visa")
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    await api.wait_status(order_id, "CONFIRMED")
    outbox_before = await api.outbox_rows(key=order_id)

    response = await api.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=await api.auth("payer"),
    )

    api.problem(response, 409, "payment-not-allowed")
    assert (await api.client.get(f"/api/orders/{order_id}", headers=await api.admin())).json()[
        "status"
    ] == "CONFIRMED"
    assert await api.outbox_rows(key=order_id) == outbox_before


async def test_paying_a_cancelled_order_is_refused(api: Any) -> None:
    placed = await api.place("payer", [(api.product, 1)], token="tok_chargeDeclined")
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    cancelled = await api.wait_status(order_id, "CANCELLED")
    assert cancelled["cancel_reason"].startswith("payment failed")

    response = await api.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=await api.auth("payer"),
    )

    api.problem(response, 409, "payment-not-allowed")


async def test_a_reserved_order_placed_without_a_token_is_paid_once(api: Any) -> None:
    placed = await api.place("payer", [(api.product, 2)])
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    await api.wait_status(order_id, "RESERVED")

    paid = await api.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=await api.auth("payer"),
    )

    assert paid.status_code == 202, paid.text
    assert paid.json()["id"] == order_id
    again = await api.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=await api.auth("payer"),
    )
    api.problem(again, 409, "payment-not-allowed")
    confirmed = await api.wait_status(order_id, "CONFIRMED")
    assert confirmed["total"] == str(api.product_price * 2)
    payment = await api.client.get(f"/api/payments/{order_id}", headers=await api.admin())
    assert payment.status_code == 200, payment.text
    assert payment.json()["amount"] == str(api.product_price * 2)


@pytest.mark.parametrize(
    "body",
    [{}, {"payment_token": ""}, {"payment_token": 5}, {"payment_token": "tok_visa", "x": 1}],
    ids=["missing", "empty", "number", "unknown-field"],
)
async def test_a_bad_pay_body_is_a_validation_problem(api: Any, body: dict[str, Any]) -> None:
    order_id = await pending_order(api)
    response = await api.client.post(
        f"/api/orders/{order_id}/pay", json=body, headers=await api.auth("payer")
    )
    api.problem(response, 422, "validation-error")
