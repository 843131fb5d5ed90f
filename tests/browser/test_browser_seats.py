"""Buyers in a real browser on the demo concert: two of them watch one seat map change live as
the other holds, pays and lets a hold run out; and a buyer who never touches the mouse."""

from __future__ import annotations

import re
import uuid
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
    sockets: list[str] = []
    alice.on("websocket", lambda socket: sockets.append(socket.url))
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
    paths = [url.split("/", 3)[3] for url in sockets]
    assert f"ws/sessions/{session_id}" in paths, paths  # live over WebSocket, not the fallback
    assert any(path.startswith("ws/orders/") for path in paths), paths

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


SEAT_LABEL = re.compile(r"^Row [A-Z] seat \d+, (available|held|sold|yours)(, picked)?$")
# every form control of the page that a screen reader would not name, by its outer HTML
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((el) => !el.closest("[hidden]"))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
        && !el.getAttribute("aria-labelledby") && !el.textContent.trim())
    .map((el) => el.outerHTML)"""
# what the focused element is called: its label, else its text
FOCUSED = """() => {
    const el = document.activeElement;
    return el ? el.getAttribute("aria-label") || el.textContent || el.tagName : "";
}"""


def tab_to(page: Page, wanted: re.Pattern[str], presses: int = 80) -> str:
    """Press Tab until the focused element's name matches `wanted` (at most `presses` times)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        name = str(page.evaluate(FOCUSED)).strip()
        if wanted.search(name):
            return name
    raise AssertionError(f"Tab never reached {wanted.pattern!r} in {presses} presses")


def focused(page: Page) -> str:
    return str(page.evaluate(FOCUSED)).strip()


def test_a_buyer_picks_a_seat_and_pays_with_the_keyboard_only(
    agora: AgoraProcess, page: Page, screenshot: Screenshot
) -> None:
    page.goto("/#/signup")
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    screenshot(page, "sign-up")
    sign_up(page)
    open_session(page, demo_session(agora, 1))

    seats = page.locator("[data-seat-id]")
    expect(seats).to_have_count(200)
    labels = seats.evaluate_all("(nodes) => nodes.map((n) => n.getAttribute('aria-label'))")
    assert all(SEAT_LABEL.match(label or "") for label in labels), labels
    assert set(seats.evaluate_all("(nodes) => nodes.map((n) => n.getAttribute('role'))")) == {
        "button"
    }
    assert page.evaluate(UNLABELLED) == []

    # one Tab stop for the whole map; the arrow keys walk it
    assert tab_to(page, re.compile(r"^Row A seat 1, ")) == "Row A seat 1, available"
    for key in ["ArrowDown"] * 3 + ["ArrowRight"] * 4:
        page.keyboard.press(key)
    assert focused(page) == "Row D seat 5, available"
    ring = page.evaluate("() => getComputedStyle(document.activeElement.firstChild).stroke")
    assert ring == "rgb(191, 87, 0)", ring  # the focus ring shows
    page.keyboard.press("Enter")
    assert focused(page) == "Row D seat 5, available, picked"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    assert focused(page) == "Row D seat 6, available, picked"
    page.keyboard.press("Space")
    assert focused(page) == "Row D seat 6, available"
    expect(page.get_by_role("list", name="Picked seats")).to_have_text("Row D seat 5 (stalls)")
    screenshot(page, "keyboard-seat-focus")

    assert tab_to(page, re.compile(r"^Hold 1 seat$")) == "Hold 1 seat"
    page.keyboard.press("Enter")
    expect(page.locator("[data-order-status]")).to_have_text("RESERVED")
    expect(seat(page, "Row D seat 5, yours")).to_be_visible()
    tab_to(page, re.compile(r"Visa test card"), presses=10)
    assert page.evaluate("() => document.activeElement.value") == "tok_visa"
    assert page.evaluate(UNLABELLED) == []
    tab_to(page, re.compile(r"^Pay "), presses=5)
    page.keyboard.press("Enter")
    expect(page.locator("[data-order-status]")).to_have_text("CONFIRMED")
    code = page.get_by_role("img", name="QR code of the ticket for Seat main-D-5")
    expect(code).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(page.locator("#announcer")).to_have_text(re.compile(r"1 tickets issued"))


def test_a_buyer_whose_websocket_is_refused_follows_the_map_over_server_sent_events(
    agora: AgoraProcess, page: Page
) -> None:
    session_id = demo_session(agora, 1)
    page.route_web_socket(re.compile(r"/ws/"), lambda socket: socket.close())
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url))
    open_session(page, session_id)
    assert any(url.endswith(f"/api/sessions/{session_id}/seats/stream") for url in streams)

    key = str(uuid.uuid4())
    body = {"tickets": [{"session_id": session_id, "seat_ids": ["main-J-20"]}]}
    placed = agora.client.post(
        "/api/orders", json=body, headers={"Idempotency-Key": key, **agora.headers("other")}
    )
    assert placed.status_code == 202, placed.text
    expect(seat(page, "Row J seat 20, held")).to_be_visible()
