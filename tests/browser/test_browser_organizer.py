"""An organizer in a real browser, from an empty account to a session on sale: a store, a
venue drawn from rows and seats and one uploaded as a plan file, an event with a category
price and a session, its sales opened, and the live sales panel counting a sale as it
happens."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from browser_support import Screenshot, sign_up
from playwright.sync_api import Page, expect

from harness import AgoraProcess, eventually

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

PLAN = {
    "categories": ["front", "back"],
    "zones": [
        {
            "id": "floor",
            "name": "Floor",
            "rows": [
                {
                    "id": row,
                    "label": row,
                    "seats": [
                        {
                            "id": f"floor-{row}-{n}",
                            "label": str(n),
                            "category": "front" if row == "A" else "back",
                            "x": n * 10.0,
                            "y": y * 10.0,
                        }
                        for n in range(1, 7)
                    ],
                }
                for y, row in enumerate("AB", start=1)
            ],
        }
    ],
    "areas": [{"id": "bar", "name": "Bar", "category": "back", "capacity": 20}],
}


def figure(page: Page, key: str) -> Any:
    return page.locator(f'[data-figure="{key}"]')


def buy_seat(agora: AgoraProcess, session_id: str, seat_id: str) -> str:
    """A buyer's paid order of one seat over the API, once orders knows the sales are open."""
    key = str(uuid.uuid4())
    body = {
        "tickets": [{"session_id": session_id, "seat_ids": [seat_id]}],
        "payment_token": "tok_visa",
    }

    def accepted() -> httpx.Response | None:
        response = agora.client.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, **agora.headers("fan")}
        )
        if response.status_code in (409, 422) and response.json()["type"] in (
            "/problems/unknown-session",
            "/problems/sales-not-open",
        ):
            return None
        return response

    response = eventually(accepted, what="orders to learn of the session's sales")
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_an_organizer_opens_sales_from_an_empty_account_through_the_pages(
    agora: AgoraProcess, page: Page, screenshot: Screenshot, tmp_path: Any
) -> None:
    sign_up(page, "seller")
    expect(page.get_by_role("heading", name="Organizer", level=1)).to_be_visible()
    expect(page.get_by_text("No store yet: open one to sell.")).to_be_visible()

    store = f"Hall {uuid.uuid4().hex[:6]}"
    page.get_by_label("Store name").fill(store)
    page.get_by_role("button", name="Open the store").click()
    expect(page.get_by_role("heading", name=f"Store: {store}")).to_be_visible()

    page.get_by_label("Venue name").fill("Main hall")
    page.get_by_label("Rows (A-J, or 1-40; the first is the best)").fill("A-E")
    page.get_by_label("Seats per row").fill("8")
    page.get_by_label("Category").fill("stalls")
    page.get_by_role("button", name="Add the venue").click()
    expect(page.get_by_text("Main hall: 40 seats, 40 places")).to_be_visible()

    plan = tmp_path / "club.json"
    plan.write_text(json.dumps(PLAN))
    page.get_by_label("Venue name").fill("Club")
    page.get_by_label("upload a plan file").check()
    page.get_by_label("Seating plan (JSON, docs/seating-plan.md)").set_input_files(plan)
    page.get_by_role("button", name="Add the venue").click()
    expect(page.get_by_text("Club: 12 seats, 32 places")).to_be_visible()

    page.get_by_label("Title").fill("Spring recital")
    page.get_by_label("Venue", exact=True).select_option(label="Main hall")
    page.get_by_label("Price of stalls").fill("30.00")
    screenshot(page, "organizer-event")
    page.get_by_role("button", name="Schedule the event").click()
    session = page.locator("[data-session-id]")
    expect(session).to_contain_text("not on sale")
    session_id = session.get_attribute("data-session-id")
    assert session_id

    session.get_by_role("button", name=re.compile(r"^Open sales of ")).click()
    expect(session.locator("[data-sales]")).to_have_text("on sale")
    expect(session.get_by_role("button", name=re.compile(r"^Close sales of "))).to_be_visible()

    session.get_by_role("link", name=re.compile(r"^Live sales of ")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Live sales: Spring recital")
    expect(figure(page, "available")).to_have_text("40")
    expect(figure(page, "sold")).to_have_text("0")
    expect(figure(page, "sales")).to_have_text("open")

    order_id = buy_seat(agora, session_id, "main-B-3")
    expect(figure(page, "sold")).to_have_text("1")
    expect(figure(page, "available")).to_have_text("39")
    expect(figure(page, "revenue")).to_have_text(re.compile(r"30\.00"))
    expect(figure(page, "tickets")).to_have_text("1")
    expect(page.get_by_role("button", name="Row B seat 3, sold", exact=True)).to_be_visible()
    eventually(
        lambda: (
            agora.client.get(f"/api/orders/{order_id}", headers=agora.headers("fan")).json()[
                "status"
            ]
            == "CONFIRMED"
        ),
        what=f"order {order_id} confirmed",
    )
    screenshot(page, "organizer-live-sales")
