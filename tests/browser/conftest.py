"""What every browser test needs: Debian's chromium driven by Playwright (its own browser download cannot work here).
Every test under tests/browser is marked `browser`. When playwright (PyPI, the dev extra) or /usr/bin/chromium
(Debian's `chromium`, installed by scripts/dev.sh) is missing, a developer's run skips them with the reason; in CI
(CI set) they fail with it instead, since CI runs scripts/dev.sh, which installs both: nothing is skipped silently."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
MISSING = (
    "needs playwright (pip install playwright)"
    if importlib.util.find_spec("playwright") is None
    else "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    if not CHROMIUM.exists()
    else None
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if MISSING is not None and not os.environ.get("CI"):
                item.add_marker(pytest.mark.skip(reason=MISSING))


# Per module, never per session: Playwright's sync API keeps an event loop running in the test's thread while it is
# open, so any later test calling asyncio.run (most of tests/unit) would fail. Inside a browser module, do asyncio
# work in another thread (inprocess.py does).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if MISSING is not None:
        pytest.fail(f"the browser tests cannot run: {MISSING} (scripts/dev.sh setup installs both)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()
