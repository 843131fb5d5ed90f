"""A sold-out product is refused at the door: orders learns availability from inventory's
AvailabilityChanged and answers 409 `sold-out` without writing anything; stock coming back
opens the door again."""

from __future__ import annotations

from typing import Any

import pytest
from accounts import register_and_login

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def one_unit_product(api: Any) -> str:
    seller = await register_and_login(api.client, "seller")
    store = await api.client.post("/api/stores", json={"name": "Last one"}, headers=seller.headers)
    assert store.status_code == 201, store.text
    product = await api.client.post(
        f"/api/stores/{store.json()['id']}/products",
        json={"name": "Last lamp", "price": "30.00", "currency": "EUR", "initial_stock": 1},
        headers=seller.headers,
    )
    assert product.status_code == 201, product.text
    return str(product.json()["id"])


async def accepted(api: Any, product_id: str, token: str) -> dict[str, Any]:
    """Place an order until the door takes it (orders learns of a listing and of stock coming
    back from events, a moment after they happen)."""

    async def placed() -> dict[str, Any] | None:
        response = await api.place("door-buyer", [(product_id, 1)], token=token)
        return dict(response.json()) if response.status_code == 202 else None

    return await api.eventually(placed, what=f"an order of {product_id} accepted")


async def refused(api: Any, product_id: str) -> dict[str, Any]:
    async def sold_out() -> dict[str, Any] | None:
        response = await api.place("door-buyer", [(product_id, 1)], token="tok_visa")
        if response.status_code != 409:
            return None
        return api.problem(response, 409, "sold-out")

    return await api.eventually(sold_out, what=f"{product_id} refused as sold out")


async def test_a_sold_out_product_is_refused_at_the_door_and_nothing_is_written(
    api: Any,
) -> None:
    product_id = await one_unit_product(api)
    first = await accepted(api, product_id, "tok_visa")
    await api.wait_status(first["id"], "CONFIRMED")
    await refused(api, product_id)  # once orders has heard that none is left
    orders_before, outbox_before = await api.orders_of("door-buyer"), await api.outbox_rows()

    key = api.new_key()
    response = await api.place("door-buyer", [(product_id, 1)], key=key, token="tok_visa")

    problem = api.problem(response, 409, "sold-out")
    assert problem["product_ids"] == [product_id]
    assert await api.orders_of("door-buyer") == orders_before
    assert await api.outbox_rows() == outbox_before
    assert await api.key_rows(key) == 0  # the key is not spent: a retry is judged afresh


async def test_stock_coming_back_opens_the_door(api: Any) -> None:
    product_id = await one_unit_product(api)
    declined = await accepted(api, product_id, "tok_chargeDeclined")  # holds the only unit
    await api.wait_status(declined["id"], "CANCELLED")

    async def released() -> bool:
        stock = await api.client.get(f"/api/stock/{product_id}", headers=await api.admin())
        return bool(stock.json()["available"] == 1)

    await api.eventually(released, what="inventory to release the hold")

    again = await accepted(api, product_id, "tok_visa")

    assert (await api.wait_status(again["id"], "CONFIRMED"))["status"] == "CONFIRMED"
    await refused(api, product_id)
