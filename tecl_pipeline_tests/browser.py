"""The Dagster UI in a real browser: Debian's headless Chromium (`make browser` installs it;
nothing is downloaded at run time) driven by Playwright, for the UI tests of the project's
webserver (defs/test_ui_browser.py) and of the running stack's (stack/test_ui.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


WEBSERVER_START_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the webserver and its code server: its own process group, TERM then KILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def dagster_webserver(cwd: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`dagster-webserver` for the project's code location (pyproject.toml [tool.dg]) with
    `env`, on a free loopback port, until the block ends; yields its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    executable = Path(sys.executable).parent / "dagster-webserver"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WEBSERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/server_info", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"dagster-webserver did not answer in {WEBSERVER_START_S}s:\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield base_url
    finally:
        _stop(process)
