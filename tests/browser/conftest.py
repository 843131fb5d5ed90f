"""A real Chromium (Debian's, started headless by Playwright) against a real `agora up`.

Playwright's own browser download does not work here: it drives `/usr/bin/chromium`, which
`agora infra up` installs. Without it every browser test fails, saying how to install it.
Screenshots go to each test's tmp dir, and to docs/console/ with AGORA_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_support import Screenshot
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from agora.infra.browser import find_chromium
from harness import AgoraProcess, product

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# What Playwright's auto-waiting expect and locators wait for a page's state, at most.
PAGE_TIMEOUT_MS = 20_000
# the goods on sale beside the demo concert that every fresh `agora up` seeds
SEED = [product("widget", 100), product("blue-teapot", 20, "18.50")]

expect.set_options(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail(
            "Chromium is missing: the browser tests need Debian's `chromium` "
            "(`.venv/bin/agora infra up` installs it, or `apt-get install -y chromium`)",
            pytrace=False,
        )
    return found


# Per module, not per session: while Playwright's sync driver runs, its event loop is the
# thread's running loop, and every async test after it (pytest-asyncio's own loop) would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def agora(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgoraProcess]:
    """One `agora up` (embedded) for a module's tests; each test makes its own accounts."""
    data_dir = tmp_path_factory.mktemp("agora") / "data"
    process = AgoraProcess(data_dir, seed=SEED, env=agora_env()).start()
    yield process
    process.stop()


def agora_env() -> dict[str, str]:
    """Settings of the browser tests' `agora up`: holds that run out within a test."""
    return {"AGORA_HOLD_SECONDS": "15"}


@pytest.fixture
def new_context(browser: Browser, agora: AgoraProcess) -> Iterator[Callable[[], BrowserContext]]:
    """Open browser contexts (separate cookies and storage, as separate people) on the
    test's `agora up`; closed after the test."""
    opened: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(
            base_url=agora.base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context: Callable[[], BrowserContext]) -> Page:
    return new_context().new_page()


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshot:
    """`screenshot(page, name)`: the page as `name`.png in the test's tmp dir, and in
    docs/console/ when AGORA_SCREENSHOTS=1."""

    def take(page: Page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("AGORA_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SCREENSHOTS / path.name).write_bytes(path.read_bytes())
        return path

    return take
