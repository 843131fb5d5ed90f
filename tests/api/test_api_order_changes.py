"""Following an order without polling: `ETag`, `If-None-Match` and `Prefer: wait` on
GET /api/orders/{id}."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from agora.services.orders import api as orders_api
from agora.services.orders import store
from agora.services.orders.changes import OrderChanges
from agora.services.orders.domain import Line, Order

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def quiet_order(api: Any, customer: str) -> str:
    """A PENDING order written without its OrderPlaced: nothing but the test changes it."""
    order = Order.place(
        await api.user_id(customer), [Line(api.product, 1, Decimal("24.90"))], "EUR"
    )
    order.events.clear()
    async with api.orders_service.unit_of_work() as uow:
        await uow.orders.add(order)
    return str(order.id)


async def current(api: Any, customer: str, order_id: str) -> tuple[str, dict[str, Any]]:
    response = await api.client.get(f"/api/orders/{order_id}", headers=await api.auth(customer))
    assert response.status_code == 200, response.text
    return response.headers["ETag"], response.json()


async def reject(api: Any, order_id: str) -> None:
    """Change the order as its saga would, through the orders service's unit of work."""
    async with api.orders_service.unit_of_work() as uow:
        order = await uow.orders.get(order_id)
        order.stock_rejected("out of stock")
        await uow.orders.save(order)


async def waiting_reader(api: Any, order_id: str) -> tuple[str, asyncio.Task[Any]]:
    """The order's current tag, and a GET waiting for the order to change, once subscribed."""
    etag, _ = await current(api, "waiter", order_id)
    headers = {**await api.auth("waiter"), "If-None-Match": etag, "Prefer": "wait=20"}
    waiting = asyncio.create_task(api.client.get(f"/api/orders/{order_id}", headers=headers))

    async def subscribed() -> bool:
        return bool(api.orders_service.changes.waiting_for(order_id))

    await api.eventually(subscribed, what="the reader to subscribe")
    return etag, waiting


async def test_a_current_tag_answers_304_at_once(api: Any) -> None:
    order_id = await quiet_order(api, "tagger")
    etag, body = await current(api, "tagger", order_id)
    assert etag.startswith('"')
    assert etag.endswith('"')

    same = await api.client.get(
        f"/api/orders/{order_id}", headers={**await api.auth("tagger"), "If-None-Match": etag}
    )
    weak = await api.client.get(
        f"/api/orders/{order_id}",
        headers={**await api.auth("tagger"), "If-None-Match": f'"other", W/{etag}'},
    )
    stale = await api.client.get(
        f"/api/orders/{order_id}", headers={**await api.auth("tagger"), "If-None-Match": '"old"'}
    )

    anything = await api.client.get(
        f"/api/orders/{order_id}", headers={**await api.auth("tagger"), "If-None-Match": "*"}
    )
    stale_with_wait = await api.client.get(
        f"/api/orders/{order_id}",
        headers={**await api.auth("tagger"), "If-None-Match": '"old"', "Prefer": "wait=5"},
    )

    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
    assert weak.status_code == anything.status_code == 304
    assert stale_with_wait.status_code == 200  # at once: nothing to wait for
    assert "Preference-Applied" not in stale_with_wait.headers
    assert "Preference-Applied" not in same.headers
    assert (stale.status_code, stale.json(), stale.headers["ETag"]) == (200, body, etag)


async def test_the_tag_changes_when_the_order_does(api: Any) -> None:
    order_id = await quiet_order(api, "tagger")
    before, _ = await current(api, "tagger", order_id)
    await reject(api, order_id)
    after, body = await current(api, "tagger", order_id)
    assert body["status"] == "CANCELLED"
    assert after != before


async def test_a_wait_ends_with_304_when_nothing_changes(api: Any) -> None:
    order_id = await quiet_order(api, "waiter")
    etag, _ = await current(api, "waiter", order_id)

    started = time.monotonic()
    response = await api.client.get(
        f"/api/orders/{order_id}",
        headers={**await api.auth("waiter"), "If-None-Match": etag, "Prefer": "wait=1"},
    )

    assert time.monotonic() - started >= 0.9  # it waited for a change that did not come
    assert response.status_code == 304
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.headers["ETag"] == etag


async def test_a_waiting_reader_is_woken_by_the_change(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no re-reads while waiting: only the announcement of the commit can end the wait early
    monkeypatch.setattr(orders_api, "RECHECK", 60.0)
    order_id = await quiet_order(api, "waiter")
    started = time.monotonic()
    etag, waiting = await waiting_reader(api, order_id)
    await reject(api, order_id)
    response = await waiting

    assert time.monotonic() - started < 10
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    assert response.headers["ETag"] != etag
    assert api.orders_service.changes.waiting_for(order_id) == 0


async def test_stopping_answers_waiting_readers_at_once(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the server stops taking requests (the app's `drain`, which the server calls as its
    shutdown begins), a reader waiting for a change answers 304 at once instead of holding
    the shutdown for the rest of its wait or being cut off."""
    monkeypatch.setattr(orders_api, "RECHECK", 60.0)
    stopping = OrderChanges()  # closed by this test, not the module's
    monkeypatch.setattr(api.orders_service, "changes", stopping)
    order_id = await quiet_order(api, "waiter")
    etag, waiting = await waiting_reader(api, order_id)
    assert _waiters(await api.metrics()) == 1

    stopping.close()  # what the service's `drain` does
    response = await asyncio.wait_for(waiting, timeout=10)

    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert response.headers["Preference-Applied"] == "wait=20"
    assert stopping.waiting() == 0


def _waiters(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    return sum(value for _, value in metrics["agora_order_waiters"])


async def test_a_change_committed_elsewhere_is_seen_by_rereading(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica's commit is not announced here: the waiting reader re-reads."""
    monkeypatch.setattr(orders_api, "RECHECK", 0.05)
    order_id = await quiet_order(api, "waiter")
    _, waiting = await waiting_reader(api, order_id)
    async with api.orders_service.platform.db.write() as conn:  # not through a unit of work
        await conn.execute(
            update(store.orders)
            .where(store.orders.c.id == order_id)
            .values(status="CANCELLED", cancel_reason="cancelled elsewhere")
        )
    response = await waiting

    assert response.status_code == 200, response.text
    assert response.json()["cancel_reason"] == "cancelled elsewhere"


async def test_a_saga_is_followed_with_one_request_per_change(api: Any) -> None:
    placed = await api.place("follower", [(api.product, 1)], token="tok_visa")
    assert placed.status_code == 202, placed.text
    order_id, etag = placed.json()["id"], placed.headers["ETag"]
    seen = [placed.json()["status"]]

    while seen[-1] != "CONFIRMED":
        response = await api.client.get(
            f"/api/orders/{order_id}",
            headers={**await api.auth("follower"), "If-None-Match": etag, "Prefer": "wait=20"},
        )
        assert response.status_code == 200, response.text  # a 304 would be a wait with no change
        assert response.headers["ETag"] != etag
        etag = response.headers["ETag"]
        seen.append(response.json()["status"])
        assert len(seen) <= 6, seen

    assert seen[0] == "PENDING"


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "respond-async", "wait"])
async def test_a_preference_not_understood_is_ignored(api: Any, prefer: str) -> None:
    order_id = await quiet_order(api, "tagger")
    etag, _ = await current(api, "tagger", order_id)

    response = await api.client.get(
        f"/api/orders/{order_id}",
        headers={**await api.auth("tagger"), "If-None-Match": etag, "Prefer": prefer},
    )

    assert response.status_code == 304
    assert "Preference-Applied" not in response.headers


async def test_another_buyers_order_stays_hidden_with_a_tag(api: Any) -> None:
    order_id = await quiet_order(api, "tagger")
    etag, _ = await current(api, "tagger", order_id)

    response = await api.client.get(
        f"/api/orders/{order_id}",
        headers={**await api.auth("snoop"), "If-None-Match": etag, "Prefer": "wait=5"},
    )

    api.problem(response, 404, "order-not-found")


async def test_a_post_that_prefers_to_wait_answers_with_the_saga_at_rest(api: Any) -> None:
    paid = await api.place("patient", [(api.product, 1)], token="tok_visa", prefer="wait=20")
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "CONFIRMED"
    assert paid.headers["Preference-Applied"] == "wait=20"
    assert paid.headers["Location"] == f"/api/orders/{paid.json()['id']}"
    etag, now = await current(api, "patient", paid.json()["id"])
    assert (paid.headers["ETag"], paid.json()) == (etag, now)

    declined = await api.place(
        "patient", [(api.product, 1)], token="tok_chargeDeclined", prefer="wait=20"
    )
    assert declined.status_code == 201, declined.text
    assert declined.json()["status"] == "CANCELLED"

    # without a payment token the saga rests at RESERVED: the buyer pays next
    unpaid = await api.place("patient", [(api.product, 1)], prefer="wait=20")
    assert unpaid.status_code == 201, unpaid.text
    assert unpaid.json()["status"] == "RESERVED"


async def test_a_replayed_key_that_prefers_to_wait_answers_200_and_no_preference_202(
    api: Any,
) -> None:
    key = api.new_key()
    first = await api.place("replayer", [(api.product, 1)], key=key, token="tok_visa")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "PENDING"
    assert "Preference-Applied" not in first.headers

    again = await api.place(
        "replayer", [(api.product, 1)], key=key, token="tok_visa", prefer="wait=20"
    )
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "CONFIRMED"


class SlowCardNetwork:
    """The card network taking its time: every charge waits until `answer` is set."""

    def __init__(self, network: Any) -> None:
        self.network = network
        self.answer = asyncio.Event()

    async def charge(self, *args: Any) -> Any:
        await self.answer.wait()
        return await self.network.charge(*args)

    async def refund(self, *args: Any) -> Any:
        return await self.network.refund(*args)


async def test_a_post_waits_no_longer_than_it_prefers(api: Any) -> None:
    """A saga that cannot come to rest in time (the card network has not answered) is
    answered 202 after the wait, with the state it has; the saga goes on."""
    (payments,) = [s for s in api.runtime.services if s.name == "payments"]
    slow = SlowCardNetwork(payments.processor._provider)
    payments.processor._provider = slow
    try:
        begun = time.monotonic()
        placed = await api.place("hurried", [(api.product, 1)], token="tok_visa", prefer="wait=1")
        waited = time.monotonic() - begun
    finally:
        slow.answer.set()
        payments.processor._provider = slow.network
    assert placed.status_code == 202, placed.text
    assert placed.json()["status"] in {"PENDING", "RESERVED"}
    assert placed.headers["Preference-Applied"] == "wait=1"
    assert 1 <= waited < 10
    await api.wait_status(placed.json()["id"], "CONFIRMED")
