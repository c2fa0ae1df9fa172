"""The event page (#/events/<key>): the trace drawn, its facts with units, and a manager's review sent with the
session's CSRF token; a viewer gets no review form. The trace and reviews need Cassandra: the browser's requests for
them are answered here (Playwright's routing), shaped as the API answers them."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from fleetsense.service.roles import Role

from tests.browser.inprocess import PASSWORD, app_with, serving, snapshot_of
from tests.browser.page_checks import serious_violations

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

START_MS = int(time.time() * 1000) - 600_000
KEY = f"van-0002/{START_MS}/harsh_brake"


def trace() -> dict[str, Any]:
    t_ms = [-10_000 + 10 * i for i in range(2001)]
    dip = [(-0.62 * math.sin(math.pi * t / 600) if 0 <= t <= 600 else 0.0) for t in t_ms]
    return {
        "event": {"key": KEY, "vehicle_id": "van-0002", "kind": "harsh_brake", "start_ms": START_MS,
                  "end_ms": START_MS + 600, "duration_ms": 600, "peak": 0.62, "peak_unit": "g"},
        "vehicle_class": "van",
        "threshold_g": 0.45,
        "calibration": {"settled": True},
        "t_ms": t_ms,
        "longitudinal_g": dip,
        "lateral_g": [0.0] * len(t_ms),
        "vertical_g": [0.0] * len(t_ms),
    }  # fmt: skip


def open_event(browser: Any, base: str, username: str, reviews: list[dict[str, Any]], *, axe: bool = False) -> Any:
    page = browser.new_page(bypass_csp=axe)  # the page's CSP refuses an injected axe script, rightly
    page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(json={"rows": []}))
    page.route("**/v1/events/**/trace", lambda route: route.fulfill(json=trace()))

    def review(route: Any) -> None:
        if route.request.method == "PUT":
            reviews.append({"headers": route.request.headers, "body": json.loads(route.request.post_data)})
            body = reviews[-1]["body"]
            route.fulfill(json={"key": KEY, **body, "reviewed_by": username, "reviewed_at": None, "driver_id": None})
        else:
            route.fulfill(status=404, json={"detail": f"event {KEY} has no review"})

    page.route("**/v1/reviews/**", review)
    page.route("**/v1/events/**/review", review)
    page.goto(base + "/app/", timeout=10_000)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    sync_api.expect(page.locator("#fleet-table")).to_be_visible(timeout=5_000)
    page.goto(f"{base}/app/#/events/{KEY}")
    sync_api.expect(page.get_by_role("heading", name="harsh brake on van-0002")).to_be_visible(timeout=5_000)
    sync_api.expect(page.locator("#trace-chart canvas")).to_be_visible(timeout=5_000)
    return page


def test_a_manager_sees_the_trace_and_reviews_the_event_with_the_csrf_token(browser: Any, tmp_path: Path) -> None:
    reviews: list[dict[str, Any]] = []
    with serving(app_with({"mona": Role.MANAGER}, snapshot_of(2))) as base:
        page = open_event(browser, base, "mona", reviews)
        facts = page.locator("dl.facts").inner_text()
        assert "0.62 g" in facts and "0.45 g" in facts and "0.6 s" in facts and "not reviewed yet" in facts
        vehicle = page.locator("dl.facts").get_by_role("link", name="van-0002")
        assert vehicle.get_attribute("href") == "#/vehicles/van-0002"  # the event leads to its vehicle
        page.get_by_label("Coached the driver").check()
        page.get_by_label("Note (up to 2,000 characters)").fill("talked about following distance")
        page.get_by_role("button", name="Save the review").click()
        sync_api.expect(page.get_by_text("Saved: coached.")).to_be_visible(timeout=5_000)
        assert reviews[0]["body"] == {"state": "coached", "note": "talked about following distance"}
        csrf = page.evaluate("async () => (await (await fetch('/v1/auth/me')).json()).csrf_token")
        assert reviews[0]["headers"]["x-csrf-token"] == csrf
        assert "coached: talked about following distance" in page.locator("dl.facts").inner_text()
        page.screenshot(path=str(tmp_path / "event.png"), full_page=True)
        page.close()


def test_a_viewer_sees_the_event_but_no_review_form(browser: Any) -> None:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(2))) as base:
        page = open_event(browser, base, "vera", [])
        assert page.get_by_role("button", name="Save the review").count() == 0
        page.close()


def test_the_event_page_with_its_review_form_has_no_serious_accessibility_violations(browser: Any) -> None:
    with serving(app_with({"mona": Role.MANAGER}, snapshot_of(2))) as base:
        page = open_event(browser, base, "mona", [], axe=True)
        assert serious_violations(page) == []
        page.close()


def test_the_review_queue_lists_the_waiting_events_and_opens_one(browser: Any) -> None:
    queued = {"key": KEY, "vehicle_id": "van-0002", "kind": "harsh_brake", "start_ms": START_MS,
              "driver_id": "driver-0002", "peak": 0.62, "peak_unit": "g", "queued_at": None}  # fmt: skip
    with serving(app_with({"mona": Role.MANAGER}, snapshot_of(2))) as base:
        page = open_event(browser, base, "mona", [])
        page.route(
            "**/v1/reviews/queue?*", lambda r: r.fulfill(json={"manager": "mona", "events": [queued], "more": False})
        )
        page.get_by_role("link", name="Review queue").click()
        row = page.locator("#review-queue tbody tr")
        sync_api.expect(row).to_have_count(1, timeout=5_000)
        assert "driver-0002" in row.inner_text() and "0.62 g" in row.inner_text()
        row.get_by_role("link", name="harsh brake").click()
        sync_api.expect(page.get_by_role("heading", name="harsh brake on van-0002")).to_be_visible(timeout=5_000)
        page.close()
