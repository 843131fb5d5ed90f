"""Buyers in a real browser on the demo concert: two of them watch one seat map change live as
the other holds, pays and lets a hold run out; and a buyer who never touches the mouse."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from browser_support import Screenshot, demo_session, seat, sign_up
from playwright.sync_api import BrowserContext, Page, expect

from harness import AgoraProcess

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

# the browser tests' installation holds seats for 15 s (conftest.agora_env)
EXPIRY_MS = 60_000


def open_session(page: Page, session_id: str) -> None:
    page.goto(f"/#/sessions/{session_id}")
    expect(page.get_by_text("Live: the map changes as others buy.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Agora demo concert")


def order_status(page: Page) -> str:
    return page.locator("[data-order-status]").get_attribute("data-order-status") or ""


def test_two_buyers_see_each_others_holds_sales_and_expiries_live(
    agora: AgoraProcess, new_context: Callable[[], BrowserContext], screenshot: Screenshot
) -> None:
    session_id = demo_session(agora, 0)
    alice, bob = new_context().new_page(), new_context().new_page()
    sign_up(alice)
    sign_up(bob)
    open_session(alice, session_id)
    open_session(bob, session_id)

    seat(alice, "Row C seat 5, available").click()
    expect(seat(alice, "Row C seat 5, available, picked")).to_have_attribute("aria-pressed", "true")
    screenshot(alice, "seat-picked")
    alice.get_by_role("button", name="Hold 1 seat").click()
    expect(alice.locator("[data-order-status]")).to_have_text("RESERVED")
    expect(seat(alice, "Row C seat 5, yours")).to_be_visible()
    expect(alice.get_by_role("timer")).to_have_text(re.compile(r"0:\d\d"))

    # Bob's map changes without a reload; the held seat cannot be picked
    held = seat(bob, "Row C seat 5, held")
    expect(held).to_be_disabled()  # aria-disabled: Playwright would wait for it to be enabled
    held.click(force=True)
    expect(held).to_have_attribute("aria-pressed", "false")
    expect(bob.get_by_text("No seat picked.")).to_be_visible()
    expect(bob.get_by_role("button", name="Pick seats on the map")).to_be_disabled()
    screenshot(bob, "seat-map-live")

    screenshot(alice, "hold-countdown")
    alice.get_by_label("Card").select_option("tok_visa")
    alice.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(alice.locator("[data-order-status]")).to_have_text("CONFIRMED")
    ticket = alice.get_by_role("img", name="QR code of the ticket for Seat main-C-5")
    expect(ticket).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    screenshot(alice, "tickets")
    expect(seat(bob, "Row C seat 5, sold")).to_be_visible()

    # Alice holds another seat and lets the hold run out: Bob sees it free again
    seat(alice, "Row C seat 6, available").click()
    alice.get_by_role("button", name="Hold 1 seat").click()
    expect(alice.locator("[data-order-status]")).to_have_text("RESERVED")
    expect(seat(bob, "Row C seat 6, held")).to_be_visible()
    expect(alice.locator("[data-order-status]")).to_have_text("EXPIRED", timeout=EXPIRY_MS)
    expect(alice.get_by_text("The hold ran out: the places are free again.")).to_be_visible()
    expect(seat(bob, "Row C seat 6, available")).to_be_visible(timeout=EXPIRY_MS)
    expect(seat(alice, "Row C seat 6, available")).to_be_visible()
    seat(bob, "Row C seat 6, available").click()
    expect(bob.get_by_role("button", name="Hold 1 seat")).to_be_enabled()
