"""Accounts in a real browser: a wrong password shown as the API's problem, and a session
that outlives its access token because the console refreshes it (tokens live in memory only:
none is stored in the browser)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from browser_support import Screenshot, sign_up, signed_in_as
from playwright.sync_api import Page, expect

from harness import PASSWORD, AgoraProcess, product

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

ACCESS_SECONDS = 8


@pytest.fixture(scope="module")
def agora(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgoraProcess]:
    """An installation whose access tokens last seconds."""
    data_dir = tmp_path_factory.mktemp("agora") / "data"
    env = {"AGORA_ACCESS_TOKEN_SECONDS": str(ACCESS_SECONDS)}
    process = AgoraProcess(data_dir, seed=[product("widget", 10)], env=env).start()
    yield process
    process.stop()


def test_a_wrong_password_shows_the_apis_problem(page: Page, screenshot: Screenshot) -> None:
    email = sign_up(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto("/#/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD + " wrong")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Invalid credentials")
    expect(alert).to_contain_text("The e-mail address or the password is wrong.")
    expect(alert).to_contain_text("/problems/invalid-credentials")
    screenshot(page, "sign-in-problem")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(signed_in_as(page, email)).to_be_visible()


def test_the_console_refreshes_its_tokens_before_they_expire(page: Page) -> None:
    sign_up(page)
    signed_in = time.monotonic()
    refreshed = 0
    # each refresh comes a few seconds before the token it replaces runs out
    while time.monotonic() - signed_in < ACCESS_SECONDS + 1:
        with page.expect_response("**/api/auth/refresh", timeout=ACCESS_SECONDS * 1000) as answer:
            pass
        assert answer.value.status == 200
        refreshed += 1
    assert refreshed >= 2
    page.get_by_role("link", name="My orders").click()
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()
    expect(page.get_by_text("No orders yet.")).to_be_visible()
    stored = page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
    )
    assert stored == '[{},{},""]', stored
