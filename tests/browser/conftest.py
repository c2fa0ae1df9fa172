"""What every browser test needs: Debian's chromium driven by Playwright (its own browser download cannot work here).
Every test under tests/browser is marked `browser`. When playwright (PyPI, the dev extra), /usr/bin/chromium
(Debian's `chromium`) or the npm packages (uPlot, axe-core: `fleetsense stack prepare`) are missing, a developer's
run skips them with the reason; in CI (CI set) the run stops with it instead, since CI runs scripts/dev.sh, which
installs all three: nothing is skipped silently."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import MISSING, chromium

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


# Per module, never per session (tests/browser/chromium.py says why).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched
