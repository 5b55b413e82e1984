"""The Dagster UI in a real browser: Debian's headless Chromium (`make browser` installs it;
nothing is downloaded at run time) driven by Playwright, for the UI tests of the project's
webserver (defs/test_ui_browser.py) and of the running stack's (stack/test_ui.py)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium dials out, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Wide enough that the graph draws full asset nodes (names, check summaries), not minimal boxes.
VIEWPORT: ViewportSize = {"width": 2560, "height": 1100}
UI_MS = 30_000

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not found: Debian's chromium could not be installed (`make browser`), "
    "so the browser UI test cannot run",
)


@contextmanager
def browser_page(base_url: str) -> Iterator[Page]:
    """A page of a fresh browser on `base_url`, Dagster's first-visit dialog dismissed."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
            context.set_default_timeout(UI_MS)
            page = context.new_page()
            # A fresh DAGSTER_HOME greets with a "Join the Dagster community" dialog, at any time.
            page.add_locator_handler(
                page.get_by_role("button", name="Skip", exact=True), lambda skip: skip.click()
            )
            yield page
        finally:
            browser.close()
