"""Every error is an RFC 9457 problem, and a refused request writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

Body = Callable[[str, str], Any]  # (customer id, known product id) -> JSON body


def order(customer: str, items: Any, **extra: Any) -> dict[str, Any]:
    """An order's body (the buyer is whoever the token names; `customer` only names the test's
    buyer)."""
    return {"items": items, **extra}


def item(product: str, quantity: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"product_id": product, "quantity": quantity, **extra}


# (body, status, problem slug); bodies are JSON unless bytes.
BAD_ORDERS: dict[str, tuple[Body | bytes, int, str]] = {
    "malformed-json": (b'{"customer_id": "c", "items": [', 400, "malformed-json"),
    "json-with-trailing-junk": (b'{"customer_id": "c"} trailing', 400, "malformed-json"),
    "quantity-as-text": (lambda c, p: order(c, [item(p, "2")]), 422, "validation-error"),
    "quantity-as-float": (lambda c, p: order(c, [item(p, 2.5)]), 422, "validation-error"),
    "quantity-as-bool": (lambda c, p: order(c, [item(p, True)]), 422, "validation-error"),
    "customer-id-as-number": (
        lambda c, p: order(c, [item(p)], customer_id=5),
        422,
        "validation-error",
    ),
    "unknown-field": (lambda c, p: order(c, [item(p)], coupon="FREE"), 422, "validation-error"),
    "unknown-item-field": (
        lambda c, p: order(c, [item(p, 1, discount=1)]),
        422,
        "validation-error",
    ),
    "quantity-zero": (lambda c, p: order(c, [item(p, 0)]), 422, "validation-error"),
    "quantity-negative": (lambda c, p: order(c, [item(p, -3)]), 422, "validation-error"),
    "quantity-too-large": (lambda c, p: order(c, [item(p, 10_001)]), 422, "validation-error"),
    "empty-items": (lambda c, p: order(c, []), 422, "validation-error"),
    "missing-items": (lambda c, p: {"payment_token": "tok_visa"}, 422, "validation-error"),
    "empty-customer-id": (
        lambda c, p: order(c, [item(p)], customer_id=""),
        422,
        "validation-error",
    ),
    "empty-payment-token": (
        lambda c, p: order(c, [item(p)], payment_token=""),
        422,
        "validation-error",
    ),
    "body-is-a-list": (lambda c, p: [order(c, [item(p)])], 422, "validation-error"),
    "unknown-product": (lambda c, p: order(c, [item("no-such-thing")]), 422, "unknown-product"),
    "known-and-unknown-product": (
        lambda c, p: order(c, [item(p), item("no-such-thing")]),
        422,
        "unknown-product",
    ),
}


class Written:
    """What a request could write in the orders service, counted before it is sent."""

    def __init__(self, api: Any, customer: str, key: str | None) -> None:
        self.api, self.customer, self.key = api, customer, key
        self.counts: tuple[int, ...] = ()
        self.backlog = 0

    @classmethod
    async def before(cls, api: Any, customer: str, key: str | None) -> Written:
        written = cls(api, customer, key)
        written.counts, written.backlog = await written._counts(), await api.outbox_backlog()
        return written

    async def _counts(self) -> tuple[int, ...]:
        tables = ("orders", "order_lines", "idempotency_keys", "outbox")
        return tuple([await self.api.count_rows(table) for table in tables])

    async def assert_nothing(self) -> None:
        assert await self.api.orders_of(self.customer) == 0
        if self.key:
            assert await self.api.key_rows(self.key) == 0
        assert await self._counts() == self.counts
        assert await self.api.outbox_backlog() <= self.backlog


@pytest.mark.parametrize("case", sorted(BAD_ORDERS))
async def test_a_bad_order_is_a_problem_and_writes_nothing(api: Any, case: str) -> None:
    body, status, slug = BAD_ORDERS[case]
    customer, key = api.new_customer(), api.new_key()
    content = body if isinstance(body, bytes) else orjson.dumps(body(customer, api.product))
    written = await Written.before(api, customer, key)

    response = await api.client.post(
        "/api/orders",
        content=content,
        headers={
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **await api.auth(customer),
        },
    )

    problem = api.problem(response, status, slug)
    assert problem["instance"] == "/api/orders"
    await written.assert_nothing()
    if slug == "unknown-product":
        assert problem["product_ids"] == ["no-such-thing"]
    if slug == "validation-error":
        assert problem["errors"], "a validation problem lists what was wrong"
        assert all({"location", "message", "type"} <= set(e) for e in problem["errors"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Idempotency-Key": ""}],
    ids=["absent", "empty"],
)
async def test_an_order_without_an_idempotency_key_is_refused(
    api: Any, headers: dict[str, str]
) -> None:
    customer = api.new_customer()
    written = await Written.before(api, customer, None)

    response = await api.client.post(
        "/api/orders",
        json=order(customer, [item(api.product)]),
        headers={**headers, **await api.auth(customer)},
    )

    api.problem(response, 400, "idempotency-key-missing")
    await written.assert_nothing()


async def test_an_overlong_idempotency_key_is_refused(api: Any) -> None:
    customer, key = api.new_customer(), "k" * 256
    written = await Written.before(api, customer, key)

    response = await api.client.post(
        "/api/orders",
        json=order(customer, [item(api.product)]),
        headers={"Idempotency-Key": key, **await api.auth(customer)},
    )

    api.problem(response, 422, "validation-error")
    await written.assert_nothing()


def oversized_order(customer: str, product: str) -> bytes:
    body = orjson.dumps(order(customer, [item(product)], note="x" * 1_000_000))
    assert len(body) > 1_000_000
    return body


async def test_an_oversized_body_is_refused_with_413(api: Any) -> None:
    customer, key = api.new_customer(), api.new_key()
    written = await Written.before(api, customer, key)

    response = await api.client.post(
        "/api/orders",
        content=oversized_order(customer, api.product),
        headers={
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **await api.auth(customer),
        },
    )

    api.problem(response, 413, "payload-too-large")
    await written.assert_nothing()


async def test_an_oversized_body_without_content_length_is_refused_with_413(api: Any) -> None:
    """A chunked upload declares no length: the limit applies to what arrives."""
    customer, key = api.new_customer(), api.new_key()
    body = oversized_order(customer, api.product)
    written = await Written.before(api, customer, key)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await api.client.post(
        "/api/orders",
        content=chunks(),
        headers={
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **await api.auth(customer),
        },
    )

    assert "content-length" not in response.request.headers
    api.problem(response, 413, "payload-too-large")
    await written.assert_nothing()


async def test_a_body_just_under_the_limit_is_read(api: Any) -> None:
    """The limit refuses only what exceeds it: a large body still reaches validation."""
    customer = api.new_customer()
    body = orjson.dumps(order(customer, [item(api.product)], note="x" * 900_000))
    response = await api.client.post(
        "/api/orders",
        content=body,
        headers={
            "Idempotency-Key": api.new_key(),
            "Content-Type": "application/json",
            **await api.auth(customer),
        },
    )
    problem = api.problem(response, 422, "validation-error")
    assert any(e["location"] == ["body", "note"] for e in problem["errors"])


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("GET", "/api/orders/no-such-order", 404, "order-not-found"),
        ("GET", "/api/orders/no-such-order/timeline", 404, "order-not-found"),
        ("POST", "/api/orders/no-such-order/pay", 404, "order-not-found"),
        ("GET", "/api/orders/" + "x" * 101, 422, "validation-error"),
        ("GET", "/api/products/no-such-product", 404, "product-not-found"),
        ("GET", "/api/stock/no-such-product", 404, "product-not-found"),
        ("GET", "/api/payments/no-such-order", 404, "payment-not-found"),
        ("GET", "/api/no-such-route", 404, "not-found"),
        ("GET", "/no-such-page", 404, "not-found"),
        ("POST", "/", 405, "method-not-allowed"),
        ("DELETE", "/api/orders", 405, "method-not-allowed"),
        ("GET", "/api/notifications?page_size=0", 422, "validation-error"),
        ("GET", "/api/products?page_size=0", 422, "validation-error"),
        ("GET", "/api/products?page=many", 422, "validation-error"),
        ("GET", "/api/products?min_price=-1", 422, "validation-error"),
    ],
)
async def test_other_errors_are_problems(
    api: Any, method: str, path: str, status: int, slug: str
) -> None:
    paying = path.endswith("/pay")
    body = {"payment_token": "tok_visa"} if paying else None
    headers = await api.auth("a-buyer") if paying else await api.admin()
    response = await api.client.request(method, path, json=body, headers=headers)
    api.problem(response, status, slug)


async def test_a_huge_page_number_is_not_a_server_error(api: Any) -> None:
    """A page past SQLite's 64-bit integers is refused; the last page allowed is empty."""
    response = await api.client.get("/api/products", params={"page": 10**20})
    api.problem(response, 422, "validation-error")
    response = await api.client.get("/api/products", params={"page": 10_000, "page_size": 100})
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


async def test_a_valid_order_still_goes_through(api: Any) -> None:
    """The control for the cases above: the same request, well formed, writes the order."""
    customer = api.new_customer()
    response = await api.place(customer, [(api.product, 2)])

    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "PENDING"
    assert body["customer_id"] == await api.user_id(customer)
    assert body["total"] == str(api.product_price * 2)
    assert response.headers["location"] == f"/api/orders/{body['id']}"
    assert "idempotent-replayed" not in response.headers
    assert await api.orders_of(customer) == 1
    assert await api.outbox_rows(key=body["id"]) == 1  # its OrderPlaced
