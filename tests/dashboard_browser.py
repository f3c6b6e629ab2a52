"""The dashboard in Debian's chromium, for the browser tests (test_dashboard, test_dashboard_history,
test_scenario_builder): the browser, a page that collects its console errors, and waiting for the page to load.
Playwright drives /usr/bin/chromium (no browser download); `make test` installs both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # the most any condition may take before a test fails (generous: a loaded 2-core machine)
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian's chromium at /usr/bin/chromium (`make test` installs it)")


@contextmanager
def chromium() -> Iterator:
    """A headless chromium (Playwright's Browser), closed on leaving. Assertions (``expect``) wait up to WAIT_MS,
    as page functions do: Playwright's own 5 s is too short on a loaded machine (a full fleet takes longer to start)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    playwright_api.expect.set_options(timeout=WAIT_MS)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(context, wait_ms: int = WAIT_MS):
    """A page whose console errors (CSP violations among them) are collected in ``page.console_errors``."""
    page = context.new_page()
    page.set_default_timeout(wait_ms)
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(
        f"{message.text} at {message.location.get('url')}"))
    page.on("pageerror", lambda error: page.console_errors.append(f"uncaught: {error}"))
    return page


def wait_loaded(page) -> None:
    """Loaded: the controls are filled from the API and the live feed is connected."""
    page.wait_for_function("() => window.__battsim && document.querySelectorAll('#preset option').length > 0 "
                           "&& document.querySelectorAll('#scenario option').length > 0 "
                           "&& window.__battsim.feeds().live.state === 'open'")


def assert_clean(page) -> None:
    """Nothing went wrong on the page: no console errors and no failed request shown to the user."""
    assert page.console_errors == []
    assert page.evaluate("() => window.__battsim.errors") == []
