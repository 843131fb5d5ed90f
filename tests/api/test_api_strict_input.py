"""The services' boundary is strict: money is a JSON string in its currency's decimals, nothing is
coerced, no string holds a NUL, and merged order lines keep to the per-product limit."""

from __future__ import annotations

from typing import Any

import pytest
from accounts import Session, register_and_login

from agora.contracts.types import MAX_QUANTITY

pytestmark = pytest.mark.asyncio(loop_scope="module")

NUL = "\u0000"


async def seller_store(api: Any) -> tuple[Session, str]:
    seller = await register_and_login(api.client, "seller")
    response = await api.client.post(
        "/api/stores", json={"name": "Strict corner"}, headers=seller.headers
    )
    assert response.status_code == 201, response.text
    return seller, str(response.json()["id"])


def product_body(**fields: Any) -> dict[str, Any]:
    return {"name": "Beans", "price": "12.50", "currency": "EUR", "initial_stock": 5, **fields}


def invalid(api: Any, response: Any, *location: str) -> dict[str, Any]:
    """Assert a 422 validation problem that names the field at `location` (under body)."""
    problem = api.problem(response, 422, "validation-error")
    locations = [tuple(error["location"]) for error in problem["errors"]]
    assert ("body", *location) in locations, problem
    return problem


@pytest.mark.parametrize(
    ("price", "currency"),
    [("12.50", "EUR"), ("1200", "JPY"), ("1.255", "BHD"), ("7", "EUR")],
)
async def test_a_price_in_its_currencys_decimals_is_listed(
    api: Any, price: str, currency: str
) -> None:
    seller, store_id = await seller_store(api)

    response = await api.client.post(
        f"/api/stores/{store_id}/products",
        json=product_body(price=price, currency=currency),
        headers=seller.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["price"] == price
    assert response.json()["currency"] == currency


@pytest.mark.parametrize(
    ("fields", "location", "error_type"),
    [
        ({"price": "1.999"}, (), "amount_minor_units"),
        ({"price": "1.5", "currency": "JPY"}, (), "amount_minor_units"),
        ({"price": "1.2345", "currency": "BHD"}, (), "amount_minor_units"),
        ({"currency": "ZZZ"}, ("currency",), "currency_unknown"),
        ({"currency": "XAU"}, ("currency",), "currency_unknown"),
        ({"currency": "eur"}, ("currency",), "string_pattern_mismatch"),
        ({"price": 12.5}, ("price",), "amount_not_string"),
        ({"price": 12}, ("price",), "amount_not_string"),
        ({"price": True}, ("price",), "amount_not_string"),
        (
            {"price": "\u0661\u0662.\u0665\u0660"},
            ("price",),
            "amount_format",
        ),  # 12.50 in Arabic-Indic digits
        ({"price": "-0.00"}, ("price",), "amount_format"),
        ({"price": "-1.00"}, ("price",), "amount_format"),
        ({"price": "1e3"}, ("price",), "amount_format"),
        ({"price": " 12.50"}, ("price",), "amount_format"),
        ({"price": "NaN"}, ("price",), "amount_format"),
        ({"initial_stock": "5"}, ("initial_stock",), "int_type"),
        ({"initial_stock": 5.0}, ("initial_stock",), "int_type"),
        ({"initial_stock": True}, ("initial_stock",), "int_type"),
        ({"name": f"Be{NUL}ans"}, ("name",), "string_nul"),
        ({"description": NUL}, ("description",), "string_nul"),
    ],
    ids=[
        "EUR-3-decimals",
        "JPY-1-decimal",
        "BHD-4-decimals",
        "unknown-currency",
        "currency-without-minor-units",
        "lowercase-currency",
        "float-price",
        "integer-price",
        "boolean-price",
        "arabic-indic-digits",
        "negative-zero",
        "negative",
        "exponent",
        "spaces",
        "nan",
        "string-stock",
        "float-stock",
        "boolean-stock",
        "nul-in-name",
        "nul-in-description",
    ],
)
async def test_a_product_with_lenient_input_is_refused(
    api: Any, fields: dict[str, Any], location: tuple[str, ...], error_type: str
) -> None:
    seller, store_id = await seller_store(api)

    response = await api.client.post(
        f"/api/stores/{store_id}/products", json=product_body(**fields), headers=seller.headers
    )

    problem = invalid(api, response, *location)
    assert error_type in {error["type"] for error in problem["errors"]}, problem
    products = await api.client.get(f"/api/stores/{store_id}/products", headers=seller.headers)
    assert products.json()["items"] == [], "nothing was listed"


async def test_a_float_price_is_refused_with_a_problem_that_says_so(api: Any) -> None:
    seller, store_id = await seller_store(api)

    response = await api.client.post(
        f"/api/stores/{store_id}/products", json=product_body(price=12.5), headers=seller.headers
    )

    problem = invalid(api, response, "price")
    assert "JSON string" in problem["detail"], problem


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"price": "1.999"}, ("price",)),
        ({"price": 3.5}, ("price",)),
        ({"price": "-0.00"}, ("price",)),
        ({"listed": 1}, ("listed",)),
        ({"listed": "true"}, ("listed",)),
        ({"name": f"x{NUL}"}, ("name",)),
    ],
    ids=["EUR-3-decimals", "float", "negative-zero", "integer-listed", "string-listed", "nul"],
)
async def test_a_product_change_with_lenient_input_is_refused(
    api: Any, changes: dict[str, Any], location: tuple[str, ...]
) -> None:
    seller, store_id = await seller_store(api)
    listed = await api.client.post(
        f"/api/stores/{store_id}/products", json=product_body(), headers=seller.headers
    )
    assert listed.status_code == 201, listed.text
    product_id = listed.json()["id"]

    response = await api.client.patch(
        f"/api/products/{product_id}", json=changes, headers=seller.headers
    )

    problem = api.problem(response, 422, "validation-error")
    assert ".".join(("body", *location)) in problem["detail"], problem
    after = await api.client.get(f"/api/products/{product_id}", headers=seller.headers)
    assert after.json()["price"] == "12.50"
    assert after.json()["name"] == "Beans"
    assert after.json()["listed"] is True


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/api/stores", {"name": f"Shop{NUL}"}, ("name",)),
        ("/api/auth/register", None, ("email",)),
        ("/api/auth/login", {"email": f"a{NUL}@example.test", "password": "x"}, ("email",)),
        ("/api/auth/refresh", {"refresh_token": f"t{NUL}"}, ("refresh_token",)),
    ],
    ids=["store-name", "register-email", "login-email", "refresh-token"],
)
async def test_a_nul_in_a_string_is_refused_naming_the_field(
    api: Any, path: str, body: dict[str, Any] | None, location: tuple[str, ...]
) -> None:
    seller = await register_and_login(api.client, "seller")
    if body is None:
        body = {"email": f"new{NUL}@example.test", "password": "x" * 20, "role": "buyer"}

    response = await api.client.post(path, json=body, headers=seller.headers)

    invalid(api, response, *location)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (
            {"items": [{"product_id": f"espresso{NUL}", "quantity": 1}]},
            ("items", "0", "product_id"),
        ),
        (
            {"items": [{"product_id": "p", "quantity": 1}], "payment_token": f"tok{NUL}"},
            ("payment_token",),
        ),
        ({"items": [{"product_id": "p", "quantity": 1}], "customer_id": NUL}, ("customer_id",)),
        ({"items": [{"product_id": "p", "quantity": "1"}]}, ("items", "0", "quantity")),
    ],
    ids=["product-id", "payment-token", "customer-id", "string-quantity"],
)
async def test_an_order_with_lenient_input_is_refused(
    api: Any, body: dict[str, Any], location: tuple[str, ...]
) -> None:
    customer = api.new_customer()

    response = await api.client.post(
        "/api/orders",
        json=body,
        headers={"Idempotency-Key": api.new_key(), **await api.auth(customer)},
    )

    invalid(api, response, *location)
    assert await api.orders_of(customer) == 0


async def test_a_nul_in_a_payment_token_is_refused_when_paying(api: Any) -> None:
    customer = api.new_customer()
    placed = await api.place(customer, [(api.product, 1)])
    assert placed.status_code == 202, placed.text

    response = await api.client.post(
        f"/api/orders/{placed.json()['id']}/pay",
        json={"payment_token": f"tok_visa{NUL}"},
        headers=await api.auth(customer),
    )

    invalid(api, response, "payment_token")


@pytest.mark.parametrize(
    "quantities",
    [[6_000, 6_000], [MAX_QUANTITY, 1], [1] * 2 + [MAX_QUANTITY - 1]],
    ids=["6000+6000", "limit+1", "three-lines"],
)
async def test_lines_of_one_product_over_the_limit_in_all_are_refused(
    api: Any, quantities: list[int]
) -> None:
    customer = api.new_customer()

    response = await api.place(customer, [(api.product, quantity) for quantity in quantities])

    problem = invalid(api, response)
    assert api.product in problem["detail"], problem
    assert await api.orders_of(customer) == 0


async def test_lines_of_one_product_up_to_the_limit_in_all_are_merged(api: Any) -> None:
    customer = api.new_customer()

    response = await api.place(customer, [(api.product, 1), (api.product, 2)])

    assert response.status_code == 202, response.text
    assert [(line["product_id"], line["quantity"]) for line in response.json()["items"]] == [
        (api.product, 3)
    ]
