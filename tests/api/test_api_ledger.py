"""The ledger over HTTP: a sale is posted to its store less commission; the seller (and admins)
read the store's balance, its entries page by page and as CSV, and pay it out; the payment shows
its postings; admins see the platform's accounts; the ledger reconciles after it all."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from accounts import Session, admin_session, register_and_login
from test_api_marketplace import list_product, open_store, stocked

from agora.services.payments.audit import ledger_invariants

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def sold(
    api: Any, seller: Session, quantity: int, price: str = "18.50"
) -> tuple[str, str, str]:
    """A store of `seller`'s with one product, and a confirmed order of `quantity` of it by a
    new buyer: `(store_id, order_id, buyer)`."""
    store_id = await open_store(api, seller)
    product = await list_product(api, seller, store_id, price=price)
    await stocked(api, product["id"])
    buyer = api.new_customer()
    placed = await api.place(buyer, [(product["id"], quantity)], token="tok_visa")
    assert placed.status_code in (201, 202), placed.text
    order_id = str(placed.json()["id"])
    await api.wait_status(order_id, "CONFIRMED")
    return store_id, order_id, buyer


async def balance(api: Any, store_id: str, caller: Session) -> dict[str, Any]:
    response = await api.client.get(f"/api/stores/{store_id}/balance", headers=caller.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_sale_is_owed_to_its_store_less_the_commission(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, order_id, _ = await sold(api, seller, 2)

    # 37.00 sold; a free seller's commission is 10 %.
    assert await balance(api, store_id, seller) == {
        "store_id": store_id,
        "holding_days": 0.0,
        "balances": [{"currency": "EUR", "balance": "33.30", "available": "33.30"}],
    }
    page = await api.client.get(f"/api/stores/{store_id}/ledger", headers=seller.headers)
    assert page.status_code == 200, page.text
    (entry,) = page.json()["items"]
    assert (entry["kind"], entry["order_id"], entry["currency"], entry["amount"]) == (
        "capture",
        order_id,
        "EUR",
        "33.30",
    )
    assert page.json()["next_after"] is None


async def test_a_payment_shows_its_capture_and_the_providers_fee(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, order_id, buyer = await sold(api, seller, 1, price="10.00")

    payment = await api.client.get(f"/api/payments/{order_id}", headers=await api.auth(buyer))
    assert payment.status_code == 200, payment.text
    postings = {p["kind"]: p for p in payment.json()["postings"]}
    assert set(postings) == {"capture", "fee"}
    capture = {e["account"]: Decimal(e["amount"]) for e in postings["capture"]["entries"]}
    assert capture == {
        "provider:clearing": Decimal("10.00"),
        f"store:{store_id}": Decimal("-9.00"),
        "platform:commission": Decimal("-1.00"),
    }
    fee = {e["account"]: Decimal(e["amount"]) for e in postings["fee"]["entries"]}
    assert fee == {"platform:fees": Decimal("0.14"), "provider:clearing": Decimal("-0.14")}


async def test_the_ledger_pages_and_streams_as_csv(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, first, _ = await sold(api, seller, 1, price="3.00")
    product = await list_product(api, seller, store_id, name="Second", price="5.00")
    await stocked(api, product["id"])
    placed = await api.place(api.new_customer(), [(product["id"], 1)], token="tok_visa")
    second = str(placed.json()["id"])
    await api.wait_status(second, "CONFIRMED")

    url = f"/api/stores/{store_id}/ledger"
    one = (await api.client.get(url, params={"limit": 1}, headers=seller.headers)).json()
    assert [item["order_id"] for item in one["items"]] == [first]
    after = one["next_after"]
    two = await api.client.get(url, params={"limit": 1, "after": after}, headers=seller.headers)
    assert [item["order_id"] for item in two.json()["items"]] == [second]

    exported = await api.client.get(f"{url}.csv", headers=seller.headers)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["order_id"], r["kind"], r["amount"]) for r in rows] == [
        (first, "capture", "2.70"),
        (second, "capture", "4.50"),
    ]


async def test_only_the_stores_seller_and_admins_read_its_books(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, _, _ = await sold(api, seller, 1)
    other = await register_and_login(api.client, "seller")
    buyer = await register_and_login(api.client)
    for path in ("balance", "ledger", "ledger.csv"):
        for intruder in (other, buyer):
            response = await api.client.get(
                f"/api/stores/{store_id}/{path}", headers=intruder.headers
            )
            api.problem(response, 404, "store-not-found")
        anonymous = await api.client.get(f"/api/stores/{store_id}/{path}")
        api.problem(anonymous, 401, "authentication-required")
    unknown = await api.client.get("/api/stores/no-such-store/balance", headers=seller.headers)
    api.problem(unknown, 404, "store-not-found")

    admin = await admin_session(api.client, api.runtime)
    assert (await balance(api, store_id, admin))["balances"][0]["balance"] == "16.65"
    refused = await api.client.get("/api/ledger/accounts", headers=seller.headers)
    api.problem(refused, 403, "forbidden")
    accounts = await api.client.get("/api/ledger/accounts", headers=admin.headers)
    assert accounts.status_code == 200, accounts.text
    names = {a["account"] for a in accounts.json()}
    assert {"provider:clearing", "platform:commission", "platform:fees"} <= names
    assert not any(name.startswith("store:") for name in names)


async def test_a_bad_page_is_a_problem(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, _, _ = await sold(api, seller, 1)
    for params in ({"limit": 0}, {"limit": 501}, {"after": -1}, {"after": "x"}):
        response = await api.client.get(
            f"/api/stores/{store_id}/ledger", params=params, headers=seller.headers
        )
        api.problem(response, 422, "validation-error")


async def test_the_ledger_reconciles(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    await sold(api, seller, 3)
    (payments,) = [s for s in api.runtime.services if s.name == "payments"]
    async with payments.platform.db.read() as conn:
        verdicts = await ledger_invariants(conn)
    assert [v for v in verdicts if not v.ok] == []
    assert {v.name for v in verdicts} >= {"postings balance", "one capture posting per charge"}


async def payout(api: Any, store_id: str, caller: Session, key: str | None, **body: Any) -> Any:
    headers = {**caller.headers, **({"Idempotency-Key": key} if key else {})}
    return await api.client.post(f"/api/stores/{store_id}/payouts", json=body, headers=headers)


async def test_a_seller_pays_out_the_balance_once_per_key(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, _, _ = await sold(api, seller, 2)

    first = await payout(api, store_id, seller, "payout-1", currency="EUR", amount="30.00")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["state"]) == ("30.00", "PAYING")
    replay = await payout(api, store_id, seller, "payout-1", currency="EUR", amount="30.00")
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    reused = await payout(api, store_id, seller, "payout-1", currency="EUR", amount="1.00")
    api.problem(reused, 422, "idempotency-key-reused")
    too_much = await payout(api, store_id, seller, "payout-2", currency="EUR", amount="3.31")
    assert api.problem(too_much, 409, "insufficient-funds")["available"] == "3.30"

    async def paid() -> list[dict[str, Any]] | None:
        listed = await api.client.get(f"/api/stores/{store_id}/payouts", headers=seller.headers)
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()
        return items if items and items[0]["state"] == "PAID" else None

    (sent,) = await api.eventually(paid, what="the payout to be sent")
    assert sent["transfer_id"].startswith("tr_")
    rest = await payout(api, store_id, seller, "payout-3", currency="EUR")
    assert rest.json()["amount"] == "3.30"
    assert (await balance(api, store_id, seller))["balances"] == [
        {"currency": "EUR", "balance": "0.00", "available": "0.00"}
    ]
    kinds = (await api.client.get(f"/api/stores/{store_id}/ledger", headers=seller.headers)).json()
    assert [(i["kind"], i["amount"]) for i in kinds["items"]] == [
        ("capture", "33.30"),
        ("payout", "-30.00"),
        ("payout", "-3.30"),
    ]


async def test_a_bad_payout_request_is_a_problem_and_pays_nothing(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id, _, _ = await sold(api, seller, 1)
    api.problem(await payout(api, store_id, seller, None, currency="EUR"), 400)
    for body in (
        {"currency": "EUR", "amount": "1.001"},
        {"currency": "EUR", "amount": 1.5},
        {"currency": "XXX"},
        {"currency": "EUR", "amount": "-1"},
        {},
    ):
        api.problem(await payout(api, store_id, seller, "bad", **body), 422)
    other = await register_and_login(api.client, "seller")
    api.problem(await payout(api, store_id, other, "theirs", currency="EUR"), 404)
    none = await payout(api, store_id, seller, "zero", currency="EUR", amount="0")
    api.problem(none, 409, "insufficient-funds")
    assert (await balance(api, store_id, seller))["balances"][0]["balance"] == "16.65"
