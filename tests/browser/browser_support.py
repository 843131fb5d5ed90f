"""What the browser tests share besides fixtures: signing up through the pages, finding the
demo concert, naming a seat as a screen reader hears it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from harness import PASSWORD, AgoraProcess

Screenshot = Callable[[Page, str], Path]


def sign_up(page: Page, role: str = "buyer") -> str:
    """A new account made through the console's sign-up page, signed in; its email."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    page.goto("/#/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password (10 characters at least)").fill(PASSWORD)
    page.get_by_label("sell: run a store" if role == "seller" else "buy tickets").check()
    page.get_by_role("button", name="Create account").click()
    expect(signed_in_as(page, email)).to_be_visible()
    return email


def demo_session(agora: AgoraProcess, index: int) -> str:
    """The id of the demo concert's session `index` (the seed opens its sales)."""
    listed = agora.client.get("/api/events", params={"q": "demo concert"})
    assert listed.status_code == 200, listed.text
    (event,) = [e for e in listed.json()["items"] if e["title"] == "Agora demo concert"]
    return str(event["sessions"][index]["id"])


def seat(page: Page, label: str) -> Locator:
    """A seat of the page's map by what a screen reader says of it ("Row C seat 5, held")."""
    return page.get_by_role("button", name=label, exact=True)


def signed_in_as(page: Page, email: str) -> Locator:
    """The navigation's word of who is signed in."""
    return page.get_by_role("navigation", name="Main").get_by_text(f"Signed in as {email}")
