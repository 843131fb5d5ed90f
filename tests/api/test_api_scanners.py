"""Door scanners: a seller makes accounts for their door staff, who log in like anyone and check
tickets in at that seller's sessions, and nothing else; a deleted one is locked out."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from accounts import PASSWORD, Session, log_in, new_email, register, register_and_login
from test_api_ticketing import final, on_sale, order, tickets_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def make_scanner(api: Any, seller: Session, **body: Any) -> Any:
    body = {"email": new_email("scanner"), "password": PASSWORD, **body}
    return await api.client.post("/api/auth/scanners", json=body, headers=seller.headers)


async def scanner_of(api: Any, seller: Session) -> Session:
    made = await make_scanner(api, seller)
    assert made.status_code == 201, made.text
    return await log_in(api.client, made.json()["email"])


async def sold_ticket(api: Any) -> tuple[Session, str, dict[str, Any]]:
    """(organizer, session id, a ticket a buyer paid for at that session)."""
    seller, _, session_id = await on_sale(api)
    buyer = await register_and_login(api.client)
    placed = await order(api, buyer, tickets=[{"session_id": session_id, "seat_ids": ["main-B-1"]}])
    assert (await final(api, buyer, placed.json()["id"]))["status"] == "CONFIRMED"
    (ticket,) = await tickets_of(api, buyer, 1)
    return seller, session_id, ticket


def scan(api: Any, who: Session, code: str, session_id: str) -> Any:
    return api.client.post(
        "/api/checkins",
        json={"code": code, "session_id": session_id, "gate": "east"},
        headers=who.headers,
    )


async def test_a_sellers_scanner_checks_the_sellers_tickets_in(api: Any) -> None:
    seller, session_id, ticket = await sold_ticket(api)
    email = new_email("door")
    made = await make_scanner(api, seller, email=email, name="  Door one ")
    assert made.status_code == 201, made.text
    account = made.json()
    assert account["email"] == email
    assert (account["role"], account["works_for"], account["name"]) == (
        "scanner",
        seller.user_id,
        "Door one",
    )
    listed = await api.client.get("/api/auth/scanners", headers=seller.headers)
    assert listed.json() == {"items": [account], "page": 1, "page_size": 20, "total": 1}

    scanner = await log_in(api.client, email)
    claims = jwt.decode(scanner.access_token, options={"verify_signature": False})
    assert (claims["role"], claims["works_for"]) == ("scanner", seller.user_id)
    me = (await api.client.get("/api/auth/me", headers=scanner.headers)).json()
    assert (me["id"], me["works_for"]) == (account["id"], seller.user_id)

    admitted = await scan(api, scanner, ticket["code"], session_id)
    assert admitted.status_code == 200, admitted.text
    assert admitted.json()["ticket"]["checked_in_gate"] == "east"
    again = api.problem(await scan(api, scanner, ticket["code"], session_id), 409)
    assert again["type"] == "/problems/already-checked-in"
    counts = await api.client.get(f"/api/sessions/{session_id}/checkins", headers=scanner.headers)
    body = counts.json()
    assert (body["tickets"], body["checked_in"]) == (1, 1)
    assert [(a["ticket_id"], a["gate"]) for a in body["admitted"]] == [(ticket["id"], "east")]


async def test_a_scanner_of_another_seller_is_refused_as_that_seller_is(api: Any) -> None:
    _, session_id, ticket = await sold_ticket(api)
    other_seller = await register_and_login(api.client, "seller")
    stranger = await scanner_of(api, other_seller)

    foreign = api.problem(await scan(api, other_seller, ticket["code"], session_id), 403)
    refused = api.problem(await scan(api, stranger, ticket["code"], session_id), 403)
    assert refused["type"] == foreign["type"] == "/problems/not-your-store"
    counted = f"/api/sessions/{session_id}/checkins"
    api.problem(await api.client.get(counted, headers=other_seller.headers), 404)
    api.problem(await api.client.get(counted, headers=stranger.headers), 404, "session-not-found")


async def test_a_scanner_may_not_buy_sell_or_make_scanners(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    scanner = await scanner_of(api, seller)
    buyer = await register_and_login(api.client)

    store = await api.client.post("/api/stores", json={"name": "Kiosk"}, headers=scanner.headers)
    assert "scanner" in api.problem(store, 403, "forbidden")["detail"]
    placed = await order(api, scanner, tickets=[])
    api.problem(placed, 403, "forbidden")
    api.problem(await make_scanner(api, scanner), 403, "forbidden")
    api.problem(await make_scanner(api, buyer), 403, "forbidden")
    listed = await api.client.get("/api/auth/scanners", headers=scanner.headers)
    api.problem(listed, 403, "forbidden")


async def test_a_deleted_scanner_cannot_log_in_and_its_tokens_are_refused(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    other_seller = await register_and_login(api.client, "seller")
    made = (await make_scanner(api, seller)).json()
    kept = (await make_scanner(api, seller)).json()
    scanner = await log_in(api.client, made["email"])
    gone = f"/api/auth/scanners/{made['id']}"

    theirs = await api.client.delete(gone, headers=other_seller.headers)
    api.problem(theirs, 404, "scanner-not-found")
    not_a_scanner = f"/api/auth/scanners/{other_seller.user_id}"
    api.problem(await api.client.delete(not_a_scanner, headers=other_seller.headers), 404)
    deleted = await api.client.delete(gone, headers=seller.headers)
    assert deleted.status_code == 204, deleted.text
    api.problem(await api.client.delete(gone, headers=seller.headers), 404, "scanner-not-found")

    login = await api.client.post(
        "/api/auth/login", json={"email": made["email"], "password": PASSWORD}
    )
    api.problem(login, 401, "invalid-credentials")
    me = await api.client.get("/api/auth/me", headers=scanner.headers)
    api.problem(me, 401, "invalid-token")
    refreshed = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": scanner.refresh_token}
    )
    api.problem(refreshed, 401, "invalid-refresh-token")
    listed = (await api.client.get("/api/auth/scanners", headers=seller.headers)).json()
    assert [item["id"] for item in listed["items"]] == [kept["id"]]
    # The address stays taken, by the deleted account.
    api.problem(await make_scanner(api, seller, email=made["email"]), 409, "email-taken")


async def test_registration_cannot_choose_the_scanner_role(api: Any) -> None:
    email = new_email("self-made")
    api.problem(await register(api.client, email, role="scanner"), 422, "validation-error")
    login = await api.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    api.problem(login, 401, "invalid-credentials")


async def test_a_scanner_cannot_take_an_address_that_has_an_account(api: Any) -> None:
    seller = await register_and_login(api.client, "seller")
    buyer = await register_and_login(api.client)
    taken = await make_scanner(api, seller, email=buyer.email.upper())
    api.problem(taken, 409, "email-taken")
    api.problem(await make_scanner(api, seller, email="not an address"), 422, "validation-error")
    api.problem(await make_scanner(api, seller, password="short"), 422, "validation-error")
    page = await api.client.get("/api/auth/scanners?page_size=0", headers=seller.headers)
    api.problem(page, 422, "validation-error")
