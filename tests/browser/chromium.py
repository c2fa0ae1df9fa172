"""Debian's chromium driven by Playwright, for every module that opens a browser: the in-process tests here
(tests/browser/conftest.py) and the dashboard against the real stack (tests/integration/test_dashboard.py).
Playwright's own browser download cannot work here, so the executable is Debian's."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetsense.service.web_assets import missing_vendored

from tests.browser.inprocess import AXE

CHROMIUM = Path("/usr/bin/chromium")
MISSING = (
    "needs playwright (pip install playwright)"
    if importlib.util.find_spec("playwright") is None
    else "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    if not CHROMIUM.exists()
    else "needs the npm packages (uPlot, axe-core): run `fleetsense stack prepare`"
    if missing_vendored() or not AXE.is_file()
    else None
)


# Use it per module, never per session: Playwright's sync API keeps an event loop running in the test's thread while
# it is open, so any later test calling asyncio.run (most of tests/unit) would fail. Inside a browser module, do
# asyncio work in another thread (inprocess.py does).
@contextmanager
def chromium() -> Iterator[Any]:
    """A launched chromium (Playwright's Browser), closed on exit; fails the test with the reason if it cannot."""
    import pytest

    if MISSING is not None:
        pytest.fail(f"the browser tests cannot run: {MISSING} (scripts/dev.sh setup installs them)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
