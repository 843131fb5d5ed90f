"""A sold-out session's waiting list through the HTTP API, as buyers use it: joining (and the
problems of joining when one should just buy), one's place in line, an offer made when a ticket
is cancelled, its email, an order that takes it, and leaving (an open offer passes on)."""

from __future__ import annotations

from typing import Any

import pytest
from accounts import Session, register_and_login
from test_api_ticketing import final, open_store, order, schedule, seat_state, tickets_of, venue

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def sold_out_box(api: Any) -> tuple[str, Session, list[dict[str, Any]], Session]:
    """A session of two seats, both sold to one buyer; returns (session id, that buyer, their
    tickets, the organizer)."""
    seller = await register_and_login(api.client, "seller")
    store_id = await open_store(api, seller)
    small = {"name": "Box", "rows": {"rows": "A-A", "seats_per_row": 2}}

    async def known() -> Any:
        made = await venue(api, seller, store_id, **small)
        return made if made.status_code == 201 else None

    venue_id = (await api.eventually(known, what="ticketing to learn of the store")).json()["id"]
    event = await schedule(api, seller, store_id, venue_id, waitlist_offer_minutes=30)
    assert event.json()["waitlist_offer_minutes"] == 30
    session_id = event.json()["sessions"][0]["id"]
    await api.client.post(f"/api/sessions/{session_id}/sales", headers=seller.headers)
    early = await register_and_login(api.client)

    async def can_join() -> Any:
        joined = await join(api, early, session_id, 1)
        return joined if joined.status_code != 409 or "sales" not in joined.text else None

    too_soon = await api.eventually(can_join, what="inventory to learn that sales opened")
    assert api.problem(too_soon, 409, "places-available")["available"] == 2

    fan = await register_and_login(api.client)
    both = [{"session_id": session_id, "category": "standard", "quantity": 2}]

    async def held() -> Any:
        placed = await order(api, fan, tickets=both)
        return placed if placed.status_code == 202 else None

    placed = await api.eventually(held, what="orders to learn that sales opened")
    assert (await final(api, fan, placed.json()["id"]))["status"] == "CONFIRMED"
    return session_id, fan, await tickets_of(api, fan, 2), seller


async def join(api: Any, buyer: Session, session_id: str, quantity: int) -> Any:
    return await api.client.post(
        f"/api/sessions/{session_id}/waitlist",
        json={"category": "standard", "quantity": quantity},
        headers=buyer.headers,
    )


async def entry_of(api: Any, buyer: Session, entry_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/waitlist/{entry_id}", headers=buyer.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def offered(api: Any, buyer: Session, entry_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await entry_of(api, buyer, entry_id)
        return body if body["state"] == "offered" else None

    return await api.eventually(probe, what=f"waiting-list entry {entry_id} to be offered places")


async def cancel(api: Any, buyer: Session, ticket: dict[str, Any]) -> None:
    gone = await api.client.post(f"/api/tickets/{ticket['id']}/cancel", headers=buyer.headers)
    assert gone.status_code == 200, gone.text


async def test_a_cancelled_ticket_goes_to_the_waiting_list_in_order(api: Any) -> None:
    session_id, fan, (first_ticket, second_ticket), organizer = await sold_out_box(api)
    bea, cal = await register_and_login(api.client), await register_and_login(api.client)

    joined = await join(api, bea, session_id, 1)
    assert joined.status_code == 201, joined.text
    bea_entry = joined.json()
    assert joined.headers["Location"] == f"/api/waitlist/{bea_entry['id']}"
    assert (bea_entry["state"], bea_entry["ahead"], bea_entry["offer"]) == ("waiting", 0, None)
    api.problem(await join(api, bea, session_id, 1), 409, "already-waiting")
    cal_entry = (await join(api, cal, session_id, 1)).json()
    assert cal_entry["ahead"] == 1
    mine = (await api.client.get("/api/waitlist", headers=cal.headers)).json()["items"]
    assert [entry["id"] for entry in mine] == [cal_entry["id"]]
    stranger = await api.client.get(f"/api/waitlist/{bea_entry['id']}", headers=cal.headers)
    api.problem(stranger, 404, "waitlist-entry-not-found")
    at_a_glance = f"/api/sessions/{session_id}/waitlist"
    tally = (await api.client.get(at_a_glance, headers=organizer.headers)).json()["tally"]
    assert tally == [{"category": "standard", "state": "waiting", "entries": 2, "places": 2}]
    api.problem(await api.client.get(at_a_glance, headers=cal.headers), 403)
    other_seller = await register_and_login(api.client, "seller")
    theirs = await api.client.get(at_a_glance, headers=other_seller.headers)
    api.problem(theirs, 404, "session-not-found")

    await cancel(api, fan, first_ticket)
    offer = (await offered(api, bea, bea_entry["id"]))["offer"]

    assert [place["seat_id"] for place in offer["places"]] == [first_ticket["seat_id"]]
    assert offer["ticket"] == {"session_id": session_id, "waitlist_id": bea_entry["id"]}
    assert await seat_state(api, session_id, first_ticket["seat_id"]) == "held"
    assert (await entry_of(api, cal, cal_entry["id"]))["state"] == "waiting"

    async def mailed() -> Any:
        found = (await api.client.get("/api/notifications", headers=bea.headers)).json()
        return [m for m in found["items"] if m["subject"] == "Places for you: 1 x standard"]

    [mail] = await api.eventually(mailed, what="the offer's email")
    assert bea_entry["id"] in mail["body"]

    mixed = {**offer["ticket"], "quantity": 1}
    api.problem(await order(api, bea, tickets=[mixed]), 422, "validation-error")

    async def not_for_cal() -> Any:
        taken = await order(api, cal, tickets=[offer["ticket"]])
        assert taken.status_code == 409, taken.text
        return taken

    refused = await api.eventually(not_for_cal, what="orders to refuse another buyer's offer")
    assert api.problem(refused, 409, "waitlist-offer-not-open")["entry_id"] == bea_entry["id"]

    async def taken() -> Any:
        placed = await order(api, bea, tickets=[offer["ticket"]])
        return placed if placed.status_code == 202 else None

    placed = (await api.eventually(taken, what="orders to learn of the offer")).json()
    assert placed["tickets"][0]["waitlist_id"] == bea_entry["id"]
    done = await final(api, bea, placed["id"])
    assert done["status"] == "CONFIRMED", done
    [ticket] = await tickets_of(api, bea, 1)
    assert ticket["seat_id"] == first_ticket["seat_id"]
    assert (await entry_of(api, bea, bea_entry["id"]))["order_id"] == placed["id"]
    leave = await api.client.delete(f"/api/waitlist/{bea_entry['id']}", headers=bea.headers)
    api.problem(leave, 409, "waitlist-offer-taken")

    await cancel(api, fan, second_ticket)
    await offered(api, cal, cal_entry["id"])
    left = await api.client.delete(f"/api/waitlist/{cal_entry['id']}", headers=cal.headers)

    assert left.status_code == 204, left.text
    assert (await entry_of(api, cal, cal_entry["id"]))["state"] == "left"

    async def back_on_sale() -> bool:
        return await seat_state(api, session_id, second_ticket["seat_id"]) == "available"

    await api.eventually(back_on_sale, what="the left offer's seat back on sale")
