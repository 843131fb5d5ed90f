"""The order saga end to end, over HTTP, against a running `agora up`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from harness import AgoraProcess, eventually, product

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def customer() -> str:
    return f"buyer-{uuid.uuid4().hex[:8]}"


def test_paid_order_is_confirmed_and_stock_sold(agora: AgoraProcess) -> None:
    before = agora.stock("widget")
    buyer = customer()
    response = agora.place([("widget", 2), ("gadget", 1)], customer=buyer)
    assert response.status_code == 202
    placed = response.json()
    assert response.headers["Location"] == f"/api/orders/{placed['id']}"
    assert placed["status"] in {"PENDING", "RESERVED", "CONFIRMED"}
    assert placed["total"] == "45.50"
    assert placed["currency"] == "EUR"

    order = agora.wait_status(placed["id"])
    assert order["status"] == "CONFIRMED"
    assert order["cancel_reason"] is None
    after = eventually(
        lambda: (s := agora.stock("widget"))["sold"] == before["sold"] + 2 and s,
        what="inventory to record the sale",
    )
    assert after["available"] + after["reserved"] + after["sold"] == 1_000
    payment = agora.client.get(f"/api/payments/{placed['id']}", headers=agora.admin).json()
    assert payment["state"] == "SUCCEEDED"
    assert payment["amount"] == "45.50"


def test_out_of_stock_cancels_with_reason_and_takes_nothing(agora: AgoraProcess) -> None:
    before = agora.stock("widget")
    order_id = agora.place([("widget", 1), ("scarce", 4)], customer=customer()).json()["id"]

    order = agora.wait_status(order_id)
    assert order["status"] == "CANCELLED"
    assert "out of stock" in order["cancel_reason"]
    assert "scarce" in order["cancel_reason"]
    assert agora.stock("widget") == before  # all or nothing: the widget line was put back
    assert agora.stock("scarce")["available"] == 3


def test_declined_card_cancels_and_restores_stock(agora: AgoraProcess) -> None:
    before = agora.stock("gadget")
    order_id = agora.place([("gadget", 5)], token="tok_chargeDeclined", customer=customer())
    order = agora.wait_status(order_id.json()["id"])
    assert order["status"] == "CANCELLED"
    assert "payment failed" in order["cancel_reason"]
    assert "declined" in order["cancel_reason"]
    restored = eventually(
        lambda: agora.stock("gadget") == before, what="gadget stock restored after the decline"
    )
    assert restored


def test_transient_payment_errors_are_retried_until_confirmed(agora: AgoraProcess) -> None:
    order_id = agora.place([("widget", 1)], token="tok_processing_error").json()["id"]
    assert agora.wait_status(order_id)["status"] == "CONFIRMED"
    payment = agora.client.get(f"/api/payments/{order_id}", headers=agora.admin).json()
    attempts = payment["attempts"]
    assert [a["outcome"] for a in attempts] == ["error", "error", "succeeded"]


def test_order_without_token_waits_reserved_then_is_paid(agora: AgoraProcess) -> None:
    order_id = agora.place([("widget", 1)], token=None).json()["id"]
    order = agora.wait_status(order_id, "RESERVED")
    assert order["hold_expires_at"] is not None
    pay = {"json": {"payment_token": "tok_visa"}, "headers": agora.headers("buyer")}
    paid = agora.client.post(f"/api/orders/{order_id}/pay", **pay)  # type: ignore[arg-type]
    assert paid.status_code == 202
    assert agora.wait_status(order_id)["status"] == "CONFIRMED"
    again = agora.client.post(f"/api/orders/{order_id}/pay", **pay)  # type: ignore[arg-type]
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/payment-not-allowed"


def test_idempotency_key_replays_the_same_order(agora: AgoraProcess) -> None:
    key = str(uuid.uuid4())
    buyer = customer()
    first = agora.place([("widget", 1)], customer=buyer, key=key)
    second = agora.place([("widget", 1)], customer=buyer, key=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    other_body = agora.place([("widget", 2)], customer=buyer, key=key)
    assert other_body.status_code == 422
    assert other_body.headers["content-type"] == "application/problem+json"
    assert other_body.json()["type"] == "/problems/idempotency-key-reused"
    no_key = agora.client.post(
        "/api/orders",
        json={"items": [{"product_id": "widget", "quantity": 1}]},
        headers=agora.headers(buyer),
    )
    assert no_key.status_code == 400
    assert no_key.json()["type"] == "/problems/idempotency-key-missing"


def test_timeline_lists_the_saga_in_order(agora: AgoraProcess) -> None:
    order_id = agora.place([("widget", 1)]).json()["id"]
    agora.wait_status(order_id)

    def full_timeline() -> list[str] | None:
        response = agora.client.get(f"/api/orders/{order_id}/timeline", headers=agora.admin)
        if response.status_code != 200:
            return None
        types = [event["type"] for event in response.json()["events"]]
        return types if "OrderConfirmed" in types else None

    types = eventually(full_timeline, what="the confirmed order's timeline")
    saga = [t for t in types if t != "AvailabilityChanged"]
    assert saga == [
        "OrderPlaced",
        "StockReserved",
        "PaymentRequested",
        "PaymentSucceeded",
        "OrderConfirmed",
    ]


def test_every_outcome_sends_one_email(agora: AgoraProcess) -> None:
    buyer = customer()
    confirmed = agora.place([("widget", 1)], customer=buyer).json()["id"]
    cancelled = agora.place([("scarce", 99)], customer=buyer).json()["id"]
    for order_id in (confirmed, cancelled):
        agora.wait_status(order_id)

    def order_mails() -> list[dict[str, Any]]:
        return [m for m in agora.messages(buyer) if m["order_id"] is not None]

    messages = eventually(lambda: (m := order_mails()) and len(m) == 2 and m, what="two emails")
    by_order = {m["order_id"]: m for m in messages}
    assert by_order[confirmed]["kind"] == "OrderConfirmed"
    assert "confirmed" in by_order[confirmed]["subject"]
    assert by_order[cancelled]["kind"] == "OrderCancelled"
    assert "out of stock" in by_order[cancelled]["body"]
    assert all(m["recipient"].startswith(buyer) for m in messages)


def test_unpaid_order_expires_and_releases_its_stock(agora_factory) -> None:  # type: ignore[no-untyped-def]
    short = agora_factory([product("ticket", 10)], name="short-hold", AGORA_HOLD_SECONDS="1.5")
    buyer = customer()
    # Log the buyer and an admin in first: the hold is shorter than a login.
    assert short.headers(buyer)
    assert short.admin
    order_id = short.place([("ticket", 4)], token=None, customer=buyer).json()["id"]
    assert short.wait_status(order_id, "RESERVED")
    assert short.stock("ticket")["reserved"] == 4

    order = short.wait_status(order_id, "EXPIRED", "CANCELLED", "CONFIRMED")
    assert order["status"] == "EXPIRED"
    eventually(
        lambda: (
            (s := short.stock("ticket"))["available"] == 10 and (s["reserved"], s["sold"]) == (0, 0)
        ),
        what="the expired hold's stock back on sale",
    )
    late = short.client.post(
        f"/api/orders/{order_id}/pay",
        json={"payment_token": "tok_visa"},
        headers=short.headers(buyer),
    )
    assert late.status_code == 409
    kinds = eventually(
        lambda: [m["kind"] for m in short.messages(buyer) if m["order_id"] is not None],
        what="an email",
    )
    assert kinds == ["OrderExpired"]


def test_metrics_count_orders_by_outcome(agora_factory) -> None:  # type: ignore[no-untyped-def]
    """Metrics of one process (on servers every service process has its own /metrics)."""
    agora = agora_factory([product("widget", 10)], name="metrics")
    order_id = agora.place([("widget", 1)]).json()["id"]
    agora.wait_status(order_id)
    metrics = agora.metrics()
    orders = {labels["status"]: value for labels, value in metrics["agora_orders"]}
    assert orders["CONFIRMED"] >= 1
    assert set(orders) == {"PENDING", "RESERVED", "CONFIRMED", "CANCELLED", "EXPIRED"}
    assert "agora_dead_letters" in metrics or "agora_dead_letters_total" in metrics
    assert metrics["agora_outbox_backlog"]
    assert metrics["agora_consumer_lag"]
