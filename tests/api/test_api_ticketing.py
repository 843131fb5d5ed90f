"""Ticketing through the HTTP API, as an organizer and buyers use it: a venue from rows, an event
with sessions, sales opened, seats held through the order saga (named and best available,
alongside goods), the seat map's versions, and the problems of each refusal."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from accounts import Session, register_and_login

pytestmark = pytest.mark.asyncio(loop_scope="module")

SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)


async def open_store(api: Any, seller: Session) -> str:
    response = await api.client.post("/api/stores", json={"name": "Globe"}, headers=seller.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def venue(api: Any, seller: Session, store_id: str, **body: Any) -> Any:
    body = body or {"name": "Globe hall", "rows": {"rows": "A-E", "seats_per_row": 10}}
    return await api.client.post(
        f"/api/stores/{store_id}/venues", json=body, headers=seller.headers
    )


async def schedule(api: Any, seller: Session, store_id: str, venue_id: str, **fields: Any) -> Any:
    body = {
        "title": "Hamlet",
        "description": "A tragedy in five acts",
        "venue_id": venue_id,
        "currency": "EUR",
        "categories": [{"name": "standard", "price": "30.00"}],
        "sessions": [{"starts_at": SOON.isoformat()}],
        "max_per_order": 4,
        "max_per_buyer": 6,
        **fields,
    }
    return await api.client.post(
        f"/api/stores/{store_id}/events", json=body, headers=seller.headers
    )


async def on_sale(api: Any) -> tuple[Session, str, str]:
    """An organizer's event with one session whose sales are open, known to orders and
    inventory; returns (organizer, event id, session id)."""
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)

    async def store_known() -> Any:
        made = await venue(api, seller, store_id)
        return made if made.status_code == 201 else None

    made = await api.eventually(store_known, what="ticketing to learn of the store")
    event = await schedule(api, seller, store_id, made.json()["id"])
    assert event.status_code == 201, event.text
    session_id = event.json()["sessions"][0]["id"]
    opened = await api.client.post(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    assert opened.status_code == 200, opened.text
    assert opened.json()["sales"]["open"] is True

    async def sales_open() -> Any:
        seats = await api.client.get(f"/api/sessions/{session_id}/seats")
        return seats if seats.status_code == 200 and seats.json()["sales"]["open"] else None

    await api.eventually(sales_open, what="inventory to open the session's sales")
    return seller, event.json()["id"], session_id


async def order(api: Any, buyer: Session, **body: Any) -> Any:
    return await api.client.post(
        "/api/orders",
        json={"payment_token": "tok_visa", **body},
        headers={**buyer.headers, "Idempotency-Key": str(uuid.uuid4())},
    )


async def final(api: Any, buyer: Session, order_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await api.client.get(f"/api/orders/{order_id}", headers=buyer.headers)
        ).json()
        return body if body["status"] in ("CONFIRMED", "CANCELLED", "EXPIRED") else None

    return await api.eventually(probe, what=f"order {order_id} to end")


async def test_a_venue_plan_is_validated_and_drawn_from_rows(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)

    async def known() -> Any:
        made = await venue(api, seller, store_id)
        return made if made.status_code == 201 else None

    made = (await api.eventually(known, what="ticketing to learn of the store")).json()
    assert (made["seats"], made["capacity"]) == (50, 50)
    assert made["plan"]["zones"][0]["rows"][0]["seats"][0]["id"] == "main-A-1"
    assert (await api.client.get(f"/api/venues/{made['id']}")).json() == made

    seat = {"id": "x-1", "label": "1", "category": "stalls", "x": 0, "y": 0}
    twice = {
        "name": "Broken",
        "plan": {
            "categories": ["stalls"],
            "zones": [
                {"id": "z", "name": "Z", "rows": [{"id": "A", "label": "A", "seats": [seat, seat]}]}
            ],
        },
    }
    refused = await venue(api, seller, store_id, **twice)
    body = api.problem(refused, 422, "validation-error")
    assert "x-1" in refused.text, body
    assert "twice" in refused.text, body

    stranger = await register_and_login(api.client, "seller")
    api.problem(await venue(api, stranger, store_id), 403, "not-your-store")
    api.problem(await venue(api, seller, "no-such-store"), 404, "store-not-found")


async def test_an_event_prices_every_category_of_its_venue(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)

    async def known() -> Any:
        made = await venue(api, seller, store_id)
        return made if made.status_code == 201 else None

    venue_id = (await api.eventually(known, what="ticketing to learn of the store")).json()["id"]
    wrong = await schedule(
        api, seller, store_id, venue_id, categories=[{"name": "vip", "price": "90.00"}]
    )
    assert "standard" in api.problem(wrong, 422, "invalid-event")["detail"]
    past = await schedule(
        api, seller, store_id, venue_id, sessions=[{"starts_at": "2020-01-01T20:00:00Z"}]
    )
    api.problem(past, 422, "invalid-event")
    naive = await schedule(
        api, seller, store_id, venue_id, sessions=[{"starts_at": "2030-01-01T20:00:00"}]
    )
    api.problem(naive, 422, "validation-error")

    made = await schedule(api, seller, store_id, venue_id)
    assert made.status_code == 201, made.text
    event = made.json()
    assert event["sessions"][0]["sales"] == {
        "open": False,
        "opens_at": None,
        "closes_at": None,
        "cancelled_at": None,
    }
    listed = (
        await api.client.get("/api/events", params={"q": "tragedy", "store": store_id})
    ).json()
    assert [e["id"] for e in listed["items"]] == [event["id"]]


async def test_seats_are_held_paid_and_sold_through_the_order_saga(api: Any) -> None:
    _, _, session_id = await on_sale(api)
    buyer = await register_and_login(api.client)
    first = await api.client.get(f"/api/sessions/{session_id}/seats")
    assert set(first.json()["seats"].values()) == {"available"}

    named = await order(api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-A-5"]}])
    assert named.status_code == 202, named.text
    best = await order(
        api, buyer, tickets=[{"session_id": session_id, "category": "standard", "quantity": 3}]
    )
    assert best.status_code == 202, best.text

    confirmed = await final(api, buyer, named.json()["id"])
    assert confirmed["status"] == "CONFIRMED", confirmed
    assert confirmed["total"] == "30.00"
    assert confirmed["places"] == [
        {"session_id": session_id, "category": "standard", "seat_id": "main-A-5", "area_id": None}
    ]
    together = await final(api, buyer, best.json()["id"])
    assert together["status"] == "CONFIRMED", together
    seats = sorted(str(p["seat_id"]) for p in together["places"])
    assert len({seat.rsplit("-", 1)[0] for seat in seats}) == 1  # one row

    # Inventory sells the seats when it applies OrderConfirmed, a moment after orders confirms.
    async def sold() -> Any:
        seen = await api.client.get(f"/api/sessions/{session_id}/seats")
        states = seen.json()["seats"]
        return seen if all(states[seat] == "sold" for seat in [*seats, "main-A-5"]) else None

    seen = await api.eventually(sold, what="inventory to sell the confirmed seats")
    assert seen.json()["version"] > first.json()["version"]
    assert seen.headers["etag"] == f'"{seen.json()["version"]}"'
    unchanged = await api.client.get(
        f"/api/sessions/{session_id}/seats", headers={"If-None-Match": seen.headers["etag"]}
    )
    assert unchanged.status_code == 304

    taken = await order(api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-A-5"]}])
    assert taken.status_code == 202, taken.text
    refused = await final(api, buyer, taken.json()["id"])
    assert refused["status"] == "CANCELLED"
    assert "main-A-5" in refused["cancel_reason"]


async def test_tickets_and_goods_are_one_order_and_one_payment(api: Any) -> None:
    seller, _, session_id = await on_sale(api)
    store_id = (await api.client.get("/api/stores", params={"seller": seller.user_id})).json()[
        "items"
    ][0]["id"]
    product = await api.client.post(
        f"/api/stores/{store_id}/products",
        json={"name": "Programme", "price": "5.00", "currency": "EUR", "initial_stock": 10},
        headers=seller.headers,
    )
    assert product.status_code == 201, product.text
    product_id = product.json()["id"]

    async def stocked() -> Any:
        found = (await api.client.get(f"/api/products/{product_id}")).json()
        return found if found.get("available") else None

    await api.eventually(stocked, what="inventory to stock the programme")
    buyer = await register_and_login(api.client)
    placed = await order(
        api,
        buyer,
        items=[{"product_id": product_id, "quantity": 2}],
        tickets=[{"session_id": session_id, "category": "standard", "quantity": 2}],
    )
    assert placed.status_code == 202, placed.text
    done = await final(api, buyer, placed.json()["id"])
    assert done["status"] == "CONFIRMED", done
    assert done["total"] == "70.00"  # 2 x 5.00 + 2 x 30.00
    assert len(done["places"]) == 2


async def test_refusals_at_the_door_are_problems(api: Any) -> None:
    seller, event_id, session_id = await on_sale(api)
    buyer = await register_and_login(api.client)

    api.problem(
        await order(api, buyer, tickets=[{"session_id": "nope", "seat_ids": ["main-A-1"]}]),
        422,
        "unknown-session",
    )
    api.problem(
        await order(api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-Z-1"]}]),
        422,
        "invalid-tickets",
    )
    api.problem(
        await order(
            api, buyer, tickets=[{"session_id": session_id, "category": "vip", "quantity": 1}]
        ),
        422,
        "invalid-tickets",
    )
    too_many = await order(
        api, buyer, tickets=[{"session_id": session_id, "category": "standard", "quantity": 5}]
    )
    assert api.problem(too_many, 409, "ticket-limit")["limit"] == 4
    api.problem(await order(api, buyer), 422, "validation-error")
    both = await order(
        api,
        buyer,
        tickets=[{"session_id": session_id, "seat_ids": ["main-A-1"], "quantity": 1}],
    )
    api.problem(both, 422, "validation-error")

    for _ in range(3):  # 3 + 3 fit under the cap of 6 per buyer; the third does not
        placed = await order(
            api, buyer, tickets=[{"session_id": session_id, "category": "standard", "quantity": 3}]
        )
        if placed.status_code == 409:
            break
        await final(api, buyer, placed.json()["id"])
    assert "per buyer" in api.problem(placed, 409, "ticket-limit")["detail"]

    closed = await api.client.delete(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["sales"]["open"] is False

    async def refused() -> Any:
        other = await register_and_login(api.client)
        late = await order(
            api, other, tickets=[{"session_id": session_id, "category": "standard", "quantity": 1}]
        )
        return late if late.status_code == 409 else None

    late = await api.eventually(refused, what="orders to learn that sales closed")
    api.problem(late, 409, "sales-not-open")
    event = (await api.client.get(f"/api/events/{event_id}")).json()
    assert event["sessions"][0]["sales"]["open"] is False


async def tickets_of(api: Any, buyer: Session, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = (await api.client.get("/api/tickets", headers=buyer.headers)).json()["items"]
        return found if len(found) >= count else None

    return await api.eventually(probe, what=f"{count} tickets to be issued")


async def test_paid_places_become_tickets_checked_in_once(api: Any) -> None:
    seller, _, session_id = await on_sale(api)
    buyer = await register_and_login(api.client)
    profile = {"name": "Ada Lovelace", "phone": "+44 20 7946 0958"}
    changed = await api.client.put("/api/auth/me/profile", json=profile, headers=buyer.headers)
    assert changed.json() == {**profile, "address": None}, changed.text
    assert (await api.client.get("/api/auth/me/profile", headers=buyer.headers)).json() == (
        changed.json()
    )
    bad_phone = await api.client.put(
        "/api/auth/me/profile", json={"phone": "call me"}, headers=buyer.headers
    )
    api.problem(bad_phone, 422, "validation-error")

    # The profile reaches ticketing in one hop; the order's confirmation, four hops later.
    placed = await order(
        api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-C-1", "main-C-2"]}]
    )
    assert (await final(api, buyer, placed.json()["id"]))["status"] == "CONFIRMED"

    tickets = await tickets_of(api, buyer, 2)
    assert sorted(t["seat_id"] for t in tickets) == ["main-C-1", "main-C-2"]
    assert {t["price"] for t in tickets} == {"30.00"}
    assert {t["attendee"] for t in tickets} == {"Ada Lovelace"}
    ticket = tickets[0]
    svg = await api.client.get(f"/api/tickets/{ticket['id']}/qr.svg", headers=buyer.headers)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    png = await api.client.get(f"/api/tickets/{ticket['id']}/qr.png", headers=buyer.headers)
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    stranger = await register_and_login(api.client)
    hidden = await api.client.get(f"/api/tickets/{ticket['id']}", headers=stranger.headers)
    api.problem(hidden, 404, "ticket-not-found")

    def scan(code: str, who: Session = seller, session: str = session_id) -> Any:
        return api.client.post(
            "/api/checkins",
            json={"code": code, "session_id": session, "gate": "north"},
            headers=who.headers,
        )

    api.problem(await scan(ticket["code"], who=buyer), 403)
    admitted = await scan(ticket["code"])
    assert admitted.status_code == 200, admitted.text
    assert admitted.json()["ticket"]["checked_in_gate"] == "north"
    again = api.problem(await scan(ticket["code"]), 409, "already-checked-in")
    assert again["checked_in_at"] == admitted.json()["ticket"]["checked_in_at"]
    assert again["gate"] == "north"

    code = tickets[1]["code"]
    head, payload, signature = code.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    api.problem(await scan(f"{head}.{payload}.{flipped}"), 422, "invalid-ticket-code")
    api.problem(await scan(buyer.headers["Authorization"].split()[1]), 422, "invalid-ticket-code")
    _, _, other_session = await on_sale(api)
    api.problem(await scan(code, session=other_session), 403)  # another seller's door

    async def mailed() -> list[dict[str, Any]] | None:
        found = (await api.client.get("/api/notifications", headers=buyer.headers)).json()
        mails = [m for m in found["items"] if m["subject"].startswith("Your ticket")]
        return mails if len(mails) == 2 else None

    mails = await api.eventually(mailed, what="an email per ticket")
    assert any(ticket["code"] in mail["body"] for mail in mails)
    attachments = [attachment for mail in mails for attachment in mail["attachments"]]
    assert sorted(attachments, key=str) == sorted(
        ({"filename": f"ticket-{t['id']}.png", "content_type": "image/png"} for t in tickets),
        key=str,
    )

    counts = await api.client.get(f"/api/sessions/{session_id}/checkins", headers=seller.headers)
    door = counts.json()
    assert (door["session_id"], door["tickets"], door["checked_in"]) == (session_id, 2, 1)
    assert [a["ticket_id"] for a in door["admitted"]] == [ticket["id"]]
    keys = (await api.client.get("/api/tickets/keys")).json()["keys"]
    assert keys
    assert all("d" not in key for key in keys)  # public halves only


async def seat_state(api: Any, session_id: str, seat_id: str) -> str:
    return str((await api.client.get(f"/api/sessions/{session_id}/seats")).json()["seats"][seat_id])


async def test_a_cancelled_ticket_is_refunded_and_its_seat_sold_again(api: Any) -> None:
    seller, _, session_id = await on_sale(api)
    buyer = await register_and_login(api.client)
    placed = await order(
        api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-D-1", "main-D-2"]}]
    )
    order_id = placed.json()["id"]
    assert (await final(api, buyer, order_id))["status"] == "CONFIRMED"
    first, second = sorted(await tickets_of(api, buyer, 2), key=lambda t: str(t["seat_id"]))

    stranger = await register_and_login(api.client)
    theirs = await api.client.post(f"/api/tickets/{first['id']}/cancel", headers=stranger.headers)
    api.problem(theirs, 404, "ticket-not-found")
    gone = await api.client.post(f"/api/tickets/{first['id']}/cancel", headers=buyer.headers)
    assert gone.status_code == 200, gone.text
    assert gone.json()["state"] == "CANCELLED"
    again = await api.client.post(f"/api/tickets/{first['id']}/cancel", headers=buyer.headers)
    api.problem(again, 409, "ticket-not-cancellable")
    door = await api.client.post(
        "/api/checkins",
        json={"code": first["code"], "session_id": session_id},
        headers=seller.headers,
    )
    api.problem(door, 422, "invalid-ticket-code")

    async def refunded() -> dict[str, Any] | None:
        payment = (await api.client.get(f"/api/payments/{order_id}", headers=buyer.headers)).json()
        return payment if payment["refunded"] == "30.00" else None

    payment = await api.eventually(refunded, what="the ticket's price to be refunded")
    assert payment["amount"] == "60.00"
    assert payment["state"] == "SUCCEEDED"  # the rest stays charged

    async def free_again() -> bool | None:
        given_back = await seat_state(api, session_id, "main-D-1") == "available"
        return (given_back and await seat_state(api, session_id, "main-D-2") == "sold") or None

    await api.eventually(free_again, what="the cancelled seat back on sale, the other sold")
    other = await register_and_login(api.client)
    resold = await order(api, other, tickets=[{"session_id": session_id, "seat_ids": ["main-D-1"]}])
    assert (await final(api, other, resold.json()["id"]))["status"] == "CONFIRMED"
    assert second["state"] == "VALID"


async def test_cancelling_is_refused_past_the_organizers_deadline(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)

    async def known() -> Any:
        made = await venue(api, seller, store_id)
        return made if made.status_code == 201 else None

    venue_id = (await api.eventually(known, what="ticketing to learn of the store")).json()["id"]
    event = await schedule(api, seller, store_id, venue_id, cancel_until_hours=24 * 60)
    session_id = event.json()["sessions"][0]["id"]
    await api.client.post(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    buyer = await register_and_login(api.client)

    async def held() -> Any:
        placed = await order(
            api, buyer, tickets=[{"session_id": session_id, "category": "standard", "quantity": 1}]
        )
        return placed if placed.status_code == 202 else None

    placed = await api.eventually(held, what="orders to learn that sales opened")
    assert (await final(api, buyer, placed.json()["id"]))["status"] == "CONFIRMED"
    [ticket] = await tickets_of(api, buyer, 1)
    late = await api.client.post(f"/api/tickets/{ticket['id']}/cancel", headers=buyer.headers)
    assert "until" in api.problem(late, 409, "ticket-not-cancellable")["detail"]


async def test_a_cancelled_session_refunds_every_ticket(api: Any) -> None:
    seller, _, session_id = await on_sale(api)
    buyers = [await register_and_login(api.client) for _ in range(2)]
    order_ids = []
    for buyer in buyers:
        placed = await order(
            api, buyer, tickets=[{"session_id": session_id, "category": "standard", "quantity": 2}]
        )
        order_ids.append(placed.json()["id"])
        assert (await final(api, buyer, placed.json()["id"]))["status"] == "CONFIRMED"
        await tickets_of(api, buyer, 2)

    called_off = await api.client.post(f"/api/sessions/{session_id}/cancel", headers=seller.headers)
    assert called_off.status_code == 200, called_off.text
    assert called_off.json()["tickets_cancelled"] == 4
    assert called_off.json()["session"]["sales"]["cancelled_at"] is not None
    reopen = await api.client.post(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    api.problem(reopen, 422, "invalid-event")

    for buyer in buyers:
        states = {t["state"] for t in await tickets_of(api, buyer, 2)}
        assert states == {"CANCELLED"}

        async def mailed(who: Session = buyer) -> list[dict[str, Any]] | None:
            found = (await api.client.get("/api/notifications", headers=who.headers)).json()
            mails = [m for m in found["items"] if "cancelled" in m["subject"]]
            return mails if len(mails) == 2 else None

        await api.eventually(mailed, what="a cancellation email per ticket")
    for buyer, order_id in zip(buyers, order_ids, strict=True):

        async def refunded(who: Session = buyer, of: str = order_id) -> bool | None:
            payment = (await api.client.get(f"/api/payments/{of}", headers=who.headers)).json()
            return payment["refunded"] == payment["amount"] == "60.00" or None

        await api.eventually(refunded, what="both tickets' prices refunded")
    late = await order(
        api, buyers[0], tickets=[{"session_id": session_id, "category": "standard", "quantity": 1}]
    )
    api.problem(late, 409, "sales-not-open")


async def test_a_sold_out_category_is_refused_at_the_door_until_places_come_back(
    api: Any,
) -> None:
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)
    small = {"name": "Box", "rows": {"rows": "A-A", "seats_per_row": 2}}

    async def known() -> Any:
        made = await venue(api, seller, store_id, **small)
        return made if made.status_code == 201 else None

    venue_id = (await api.eventually(known, what="ticketing to learn of the store")).json()["id"]
    event = await schedule(api, seller, store_id, venue_id)
    session_id = event.json()["sessions"][0]["id"]
    await api.client.post(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    buyer = await register_and_login(api.client)
    two = [{"session_id": session_id, "category": "standard", "quantity": 2}]

    async def held() -> Any:
        placed = await order(api, buyer, tickets=two)
        return placed if placed.status_code == 202 else None

    placed = await api.eventually(held, what="orders to learn that sales opened")
    assert (await final(api, buyer, placed.json()["id"]))["status"] == "CONFIRMED"
    one = [{"session_id": session_id, "category": "standard", "quantity": 1}]

    async def refused() -> Any:
        late = await order(api, buyer, tickets=one)
        if late.status_code == 202:  # not known yet: the saga refuses it instead
            assert (await final(api, buyer, late.json()["id"]))["status"] == "CANCELLED"
            return None
        return late

    late = await api.eventually(refused, what="orders to learn the session is sold out")
    assert api.problem(late, 409, "sold-out")["category"] == "standard"

    [ticket, _] = await tickets_of(api, buyer, 2)
    gone = await api.client.post(f"/api/tickets/{ticket['id']}/cancel", headers=buyer.headers)
    assert gone.status_code == 200, gone.text
    other = await register_and_login(api.client)

    async def back() -> Any:
        again = await order(api, other, tickets=one)
        return again if again.status_code == 202 else None

    again = await api.eventually(back, what="orders to learn a place came back")
    assert (await final(api, other, again.json()["id"]))["status"] == "CONFIRMED"
