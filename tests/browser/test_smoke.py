"""The dashboard in a real browser, without a stack: the API in process (tests/browser/inprocess.py) and Debian's
chromium driven by Playwright. Log in, and the fleet page shows the fleet. Needs `pip install playwright` and
/usr/bin/chromium (Debian's `chromium`); skipped without either (Playwright's own browser download cannot work here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetsense.service.roles import Role

from tests.browser.inprocess import PASSWORD, app_with, serving, snapshot_of

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_viewer_logs_in_and_sees_every_vehicle_with_its_units(browser: Any, tmp_path: Path) -> None:
    app = app_with({"vera": Role.VIEWER}, snapshot_of(12))
    with serving(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        script_errors: list[str] = []
        blocked: list[str] = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(base + "/", timeout=10_000)
        assert page.url == base + "/app/"
        page.get_by_label("Username").fill("vera")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        sync_api.expect(page.get_by_role("alert")).to_contain_text("wrong username or password", timeout=5_000)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")  # the keyboard alone logs in
        table = page.locator("#fleet-table")
        sync_api.expect(table).to_be_visible(timeout=5_000)
        assert page.title() == "Fleet now · fleetsense"
        assert table.locator("tbody tr").count() == 12
        first = table.locator("tbody tr").first.inner_text()
        assert "van-0001" in first and "/ 100" in first and "events" in first
        sync_api.expect(page.locator("#who")).to_have_text("vera (viewer)")
        assert "Times are shown in your time zone" in page.locator("#zone").inner_text()
        # No live feed in process (no broker): the page says so instead of spinning.
        sync_api.expect(page.get_by_text("The live feed is not available")).to_be_visible(timeout=5_000)
        page.reload()  # the session survives a reload (GET /v1/auth/me gives the CSRF token again)
        sync_api.expect(table).to_be_visible(timeout=5_000)
        page.screenshot(path=str(tmp_path / "fleet-now.png"), full_page=True)
        page.get_by_role("button", name="Log out").click()
        sync_api.expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=5_000)
        assert script_errors == [] and blocked == []
        page.close()
