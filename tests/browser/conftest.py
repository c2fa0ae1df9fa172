"""What every browser test needs: Debian's chromium driven by Playwright (its own browser download cannot work here).
Every test under tests/browser is marked `browser`. When playwright (PyPI, the dev extra), /usr/bin/chromium
(Debian's `chromium`) or the npm packages (uPlot, axe-core: `fleetsense stack prepare`) are missing, a developer's
run skips them with the reason; in CI (CI set) the run stops with it instead, since CI runs scripts/dev.sh, which
installs all three: nothing is skipped silently."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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
if MISSING is not None and os.environ.get("CI"):
    # Loud, not skipped: CI runs scripts/dev.sh, which installs every one of them.
    raise RuntimeError(f"the browser tests cannot run in CI: {MISSING} (scripts/dev.sh setup installs it)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if MISSING is not None:
                item.add_marker(pytest.mark.skip(reason=MISSING))


# Per module, never per session: Playwright's sync API keeps an event loop running in the test's thread while it is
# open, so any later test calling asyncio.run (most of tests/unit) would fail. Inside a browser module, do asyncio
# work in another thread (inprocess.py does).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()
