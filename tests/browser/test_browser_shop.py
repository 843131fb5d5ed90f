"""A buyer of goods in a real browser: a search that finds one product among others, the
product's page, the cart, an order paid with a test card and followed live to CONFIRMED, a
declined card's order cancelled with its reason, and both in the buyer's orders."""

from __future__ import annotations

import re

import pytest
from browser_support import Screenshot, sign_up
from playwright.sync_api import Page, expect

from harness import AgoraProcess

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


def test_a_buyer_searches_orders_and_sees_the_order_confirmed(
    agora: AgoraProcess, page: Page, screenshot: Screenshot
) -> None:
    sign_up(page)
    page.get_by_role("link", name="Shop").click()
    products = page.get_by_role("list", name="Products")
    expect(products.get_by_role("heading", name="Widget")).to_be_visible()

    page.get_by_role("searchbox", name="Search products").fill("teapot")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status").filter(has_text="products")).to_have_text("1 products")
    expect(products.get_by_role("listitem")).to_have_count(1)
    expect(products.get_by_role("heading", name="Blue Teapot")).to_be_visible()
    screenshot(page, "shop-search")

    products.get_by_role("link", name="Blue Teapot").click()
    expect(page.get_by_role("heading", name="Blue Teapot", level=1)).to_be_visible()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#announcer")).to_have_text(re.compile(r"2 \S Blue Teapot added"))
    page.get_by_role("link", name="Go to the cart").click()
    expect(page.get_by_role("row", name=re.compile(r"Blue Teapot 2"))).to_be_visible()
    page.get_by_label("Card").select_option("tok_visa")
    page.get_by_role("button", name=re.compile(r"^Order and pay .*37\.00")).click()

    expect(page.get_by_role("heading", name="Order", level=1)).to_be_visible()
    status = page.locator("[data-order-status]")
    expect(status).to_have_text("CONFIRMED")
    expect(page.get_by_text("Paid. Thank you!")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"blue-teapot 2"))).to_be_visible()
    screenshot(page, "order-confirmed")
    assert agora.stock("blue-teapot")["available"] == 18

    # the same again with the card the provider declines
    page.get_by_role("link", name="Shop").click()
    page.get_by_role("button", name="Add Widget to the cart").click()
    page.get_by_role("link", name="Cart", exact=True).click()
    page.get_by_label("Card").select_option("tok_chargeDeclined")
    page.get_by_role("button", name=re.compile(r"^Order and pay ")).click()
    expect(page.locator("[data-order-status]")).to_have_text("CANCELLED")
    expect(page.get_by_text(re.compile(r"^Cancelled: .*declined", re.IGNORECASE))).to_be_visible()

    page.get_by_role("link", name="My orders").click()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(3)  # the header and two orders, newest first
    expect(rows.nth(1)).to_contain_text("CANCELLED")
    expect(rows.nth(2)).to_contain_text("CONFIRMED")
