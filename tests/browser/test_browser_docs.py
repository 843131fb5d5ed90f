"""The browser itself: Chromium opens the API's interactive docs, served offline."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_the_api_docs_render_in_chromium(page: Page) -> None:
    page.goto("/docs")
    expect(page).to_have_title("Agora API")
    expect(page.get_by_role("heading", name="Agora 0.1.0")).to_be_visible()
    expect(page.get_by_role("button", name="POST /api/orders Place an order")).to_be_visible()
