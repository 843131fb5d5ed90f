"""Stores, products, search, reviews and orders across tenants: who may read and change what."""

from __future__ import annotations

from typing import Any

import pytest
from accounts import Session, register_and_login

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def open_store(api: Any, seller: Session, name: str = "Coffee corner") -> str:
    response = await api.client.post(
        "/api/stores", json={"name": name, "description": "Beans"}, headers=seller.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def list_product(api: Any, seller: Session, store_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Kenyan AA beans",
        "description": "Bright, winey, blackcurrant",
        "price": "18.50",
        "currency": "EUR",
        "initial_stock": 20,
        **fields,
    }
    response = await api.client.post(
        f"/api/stores/{store_id}/products", json=body, headers=seller.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def stocked(api: Any, product_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.client.get(f"/api/products/{product_id}")).json()
        return body if body.get("available", 0) > 0 else None

    return await api.eventually(probe, what=f"inventory to stock {product_id}")


async def test_a_seller_lists_a_product_and_inventory_stocks_it(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)
    product = await list_product(api, seller, store_id)
    assert (product["store_id"], product["seller_id"]) == (store_id, seller.user_id)
    assert product["listed"] is True

    assert (await stocked(api, product["id"]))["available"] == 20
    stock = await api.client.get(f"/api/stock/{product['id']}", headers=seller.headers)
    assert stock.status_code == 200, stock.text
    assert stock.json()["available"] == 20


async def test_buyers_cannot_open_stores_and_anonymous_callers_must_log_in(api: Any) -> None:
    buyer = await register_and_login(api.client)
    refused = await api.client.post("/api/stores", json={"name": "Mine"}, headers=buyer.headers)
    api.problem(refused, 403, "forbidden")
    anonymous = await api.client.post("/api/stores", json={"name": "Mine"})
    api.problem(anonymous, 401, "authentication-required")
    assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_a_seller_cannot_touch_another_sellers_store_or_products(api: Any) -> None:
    owner = await register_and_login(api.client, "seller")
    intruder = await register_and_login(api.client, "seller")
    store_id = await open_store(api, owner)
    product = await list_product(api, owner, store_id)
    hidden = await list_product(api, owner, store_id, name="Unreleased blend")
    unlisted = await api.client.delete(f"/api/products/{hidden['id']}", headers=owner.headers)
    assert unlisted.status_code == 204, unlisted.text
    await stocked(api, product["id"])

    new_product = {"name": "Fake", "price": "1.00", "currency": "EUR", "initial_stock": 1}
    attempts = [
        ("POST", f"/api/stores/{store_id}/products", new_product),
        ("PATCH", f"/api/stores/{store_id}", {"name": "Taken over"}),
        ("PATCH", f"/api/products/{product['id']}", {"price": "0.01"}),
        ("DELETE", f"/api/products/{product['id']}", None),
        ("PATCH", f"/api/products/{hidden['id']}", {"listed": True}),
        ("GET", f"/api/products/{hidden['id']}", None),
        ("GET", f"/api/stock/{product['id']}", None),
    ]
    for method, path, body in attempts:
        response = await api.client.request(method, path, json=body, headers=intruder.headers)
        assert response.status_code in (403, 404), (method, path, response.text)
        api.problem(response, response.status_code)

    after = (await api.client.get(f"/api/products/{product['id']}")).json()
    assert (after["price"], after["listed"], after["name"]) == ("18.50", True, product["name"])
    mine = await api.client.get(f"/api/stores/{store_id}/products", headers=owner.headers)
    theirs = await api.client.get(f"/api/stores/{store_id}/products", headers=intruder.headers)
    assert {p["id"] for p in mine.json()["items"]} == {product["id"], hidden["id"]}
    assert {p["id"] for p in theirs.json()["items"]} == {product["id"]}


async def test_search_finds_by_words_filters_sorts_and_pages(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller, "Search store")
    kettle = await list_product(
        api, seller, store_id, name="Copper kettle", description="Stovetop", price="80.00"
    )
    grinder = await list_product(
        api, seller, store_id, name="Hand grinder", description="Ceramic burrs", price="35.00"
    )
    await list_product(api, seller, store_id, name="Tea kettle", description="Glass", price="25")

    async def search(**params: Any) -> dict[str, Any]:
        response = await api.client.get("/api/products", params={"store": store_id, **params})
        assert response.status_code == 200, response.text
        return dict(response.json())

    found = await search(q="kettl")  # a prefix of a word, stemmed alike on both engines
    assert {p["name"] for p in found["items"]} == {"Copper kettle", "Tea kettle"}
    assert [p["id"] for p in (await search(q="ceramic burr"))["items"]] == [grinder["id"]]
    assert (await search(q="copper grinder"))["items"] == []  # every word required
    cheap = await search(max_price="40", sort="price")
    assert [p["name"] for p in cheap["items"]] == ["Tea kettle", "Hand grinder"]
    dear = await search(min_price="30", sort="-price")
    assert [p["id"] for p in dear["items"]] == [kettle["id"], grinder["id"]]
    first, second = (
        await search(sort="name", page_size=2),
        await search(sort="name", page=2, page_size=2),
    )
    assert first["total"] == second["total"] == 3
    assert [p["name"] for p in first["items"] + second["items"]] == [
        "Copper kettle",
        "Hand grinder",
        "Tea kettle",
    ]
    # An unlisted product leaves the search; the cached answer is dropped with it.
    await api.client.delete(f"/api/products/{kettle['id']}", headers=seller.headers)
    assert {p["name"] for p in (await search(q="kettle"))["items"]} == {"Tea kettle"}


async def test_a_cached_search_shows_what_a_sale_left(api: Any) -> None:
    """A sale changes availability: the cached search (its TTL far longer than this test's
    wait) is dropped with the next search generation."""
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller, "Lantern store")
    product = await list_product(api, seller, store_id, name="Storm lantern")
    await stocked(api, product["id"])

    async def listed() -> dict[str, Any]:
        response = await api.client.get("/api/products", params={"q": "lantern", "store": store_id})
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        return dict(item)

    assert (await listed())["available"] == 20  # now cached
    placed = await api.place("lantern-buyer", [(product["id"], 3)], token="tok_visa")
    await api.wait_status(placed.json()["id"], "CONFIRMED")

    async def sold() -> dict[str, Any] | None:
        item = await listed()
        return item if item["available"] == 17 else None

    await api.eventually(sold, what="the search to show 17 available")


async def test_a_price_change_reaches_new_orders(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    product = await list_product(api, seller, await open_store(api, seller), price="10.00")
    await stocked(api, product["id"])
    changed = await api.client.patch(
        f"/api/products/{product['id']}", json={"price": "12.00"}, headers=seller.headers
    )
    assert changed.json()["price"] == "12.00"

    async def repriced() -> dict[str, Any] | None:
        placed = await api.place("repricing-buyer", [(product["id"], 1)])
        return placed.json() if placed.json().get("total") == "12.00" else None

    assert (await api.eventually(repriced, what="orders to learn the new price"))["total"]


async def test_only_buyers_of_a_product_review_it_once(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    product = await list_product(api, seller, await open_store(api, seller, "Reviewed"))
    await stocked(api, product["id"])
    path = f"/api/products/{product['id']}/reviews"
    stranger = await api.auth("review-stranger")
    refused = await api.client.post(path, json={"rating": 5, "text": "?"}, headers=stranger)
    api.problem(refused, 403, "not-a-purchaser")

    placed = await api.place("reviewer", [(product["id"], 1)], token="tok_visa")
    await api.wait_status(placed.json()["id"], "CONFIRMED")
    reviewer = await api.auth("reviewer")

    async def reviewed() -> Any:
        response = await api.client.post(
            path, json={"rating": 4, "text": "Lovely"}, headers=reviewer
        )
        return response if response.status_code == 201 else None

    await api.eventually(reviewed, what="catalog to learn of the purchase")
    again = await api.client.post(path, json={"rating": 1, "text": "x"}, headers=reviewer)
    api.problem(again, 409, "already-reviewed")
    bad = await api.client.post(path, json={"rating": 6}, headers=reviewer)
    api.problem(bad, 422, "validation-error")
    by_seller = await api.client.post(path, json={"rating": 5}, headers=seller.headers)
    api.problem(by_seller, 403, "forbidden")

    shown = (await api.client.get(f"/api/products/{product['id']}")).json()
    assert (shown["rating"], shown["review_count"]) == (4.0, 1)
    reviews = (await api.client.get(path)).json()
    assert [(r["rating"], r["text"]) for r in reviews["items"]] == [(4, "Lovely")]


async def test_orders_belong_to_their_buyer(api: Any) -> None:
    placed = await api.place("owner-buyer", [(api.product, 1)])
    order_id = placed.json()["id"]
    assert placed.json()["customer_id"] == await api.user_id("owner-buyer")
    other = await api.auth("other-buyer")
    for method, path, body in [
        ("GET", f"/api/orders/{order_id}", None),
        ("POST", f"/api/orders/{order_id}/pay", {"payment_token": "tok_visa"}),
        ("GET", f"/api/orders/{order_id}/timeline", None),
        ("GET", f"/api/payments/{order_id}", None),
    ]:
        response = await api.client.request(method, path, json=body, headers=other)
        api.problem(response, 404)
    mine = await api.client.get(f"/api/orders/{order_id}", headers=await api.auth("owner-buyer"))
    assert mine.status_code == 200
    listed = await api.client.get("/api/orders", headers=other)
    assert order_id not in {o["id"] for o in listed.json()["items"]}
    own = await api.client.get("/api/orders", headers=await api.auth("owner-buyer"))
    assert order_id in {o["id"] for o in own.json()["items"]}

    mismatch = await api.client.post(
        "/api/orders",
        json={"customer_id": "someone-else", "items": [{"product_id": api.product, "quantity": 1}]},
        headers={"Idempotency-Key": api.new_key(), **other},
    )
    api.problem(mismatch, 403, "customer-mismatch")
    other_mail = await api.client.get(
        "/api/notifications",
        params={"customer_id": await api.user_id("owner-buyer")},
        headers=other,
    )
    api.problem(other_mail, 403, "forbidden")


async def test_a_seller_reads_orders_of_its_products_only(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    rival = await register_and_login(api.client, "seller")
    product = await list_product(api, seller, await open_store(api, seller, "Sold here"))
    await stocked(api, product["id"])

    async def placed_for_product() -> Any:
        response = await api.place("seller-customer", [(product["id"], 1)])
        return response if response.status_code == 202 else None

    order_id = (await api.eventually(placed_for_product, what="orders to know it")).json()["id"]
    seen = await api.client.get(f"/api/orders/{order_id}", headers=seller.headers)
    assert seen.status_code == 200, seen.text
    assert order_id in {
        o["id"]
        for o in (await api.client.get("/api/orders", headers=seller.headers)).json()["items"]
    }
    api.problem(await api.client.get(f"/api/orders/{order_id}", headers=rival.headers), 404)


async def test_the_acting_user_and_request_id_reach_the_events(api: Any) -> None:
    response = await api.client.post(
        "/api/orders",
        json={"items": [{"product_id": api.product, "quantity": 1}]},
        headers={
            "Idempotency-Key": api.new_key(),
            "X-Request-Id": "req-trace-1",
            **await api.auth("traced-buyer"),
        },
    )
    assert response.headers["x-request-id"] == "req-trace-1"
    outbox = api.orders_service.platform.outbox
    from agora.messaging import Envelope

    async with api.orders_service.platform.db.read() as conn:
        rows = (
            await conn.execute(outbox.select().where(outbox.c.key == response.json()["id"]))
        ).all()
    envelope = Envelope.from_bytes(rows[0].value)
    assert (envelope.request_id, envelope.actor) == (
        "req-trace-1",
        await api.user_id("traced-buyer"),
    )
    generated = await api.client.get("/api/products")
    assert len(generated.headers["x-request-id"]) >= 16


async def test_tokens_are_checked_by_the_routes_and_security_headers_sent(api: Any) -> None:
    forged = await api.client.get("/api/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    api.problem(forged, 401, "invalid-token")
    ok = await api.client.get("/api/products")
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert ok.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in ok.headers["content-security-policy"]
    docs = await api.client.get("/docs")
    assert "content-security-policy" not in docs.headers  # the docs page runs its scripts
