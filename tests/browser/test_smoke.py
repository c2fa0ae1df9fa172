"""The dashboard in a real browser, without a stack: the API in process (tests/browser/inprocess.py) and Debian's
chromium driven by Playwright. Log in, and the fleet page shows the fleet. Needs `pip install playwright` and
/usr/bin/chromium (Debian's `chromium`); skipped without either (Playwright's own browser download cannot work here)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fleetsense.service.roles import Role

from tests.browser.inprocess import PASSWORD, LiveContext, app_with, serving, snapshot_of
from tests.browser.page_checks import serious_violations
from tests.unit.service_events import live_event

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")


def test_a_viewer_logs_in_and_sees_every_vehicle_with_its_units(browser: Any, tmp_path: Path) -> None:
    app = app_with({"vera": Role.VIEWER}, snapshot_of(12))
    with serving(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        script_errors: list[str] = []
        blocked: list[str] = []
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(json={"rows": []}))  # no Cassandra
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
        assert "van-0001" in first and "/ 100" in first
        assert "1 harsh event" in first and "1 harsh brake, 1 bump" in first  # harsh counted, bumps only listed
        vehicle_link = table.get_by_role("link", name="van-0001", exact=True)
        assert vehicle_link.get_attribute("href") == "#/vehicles/van-0001"  # each row leads to its vehicle page
        sync_api.expect(page.locator("#who")).to_have_text("vera (viewer)")
        assert "Times are shown in your time zone" in page.locator("#zone").inner_text()
        sync_api.expect(page.get_by_text("No counted events on")).to_be_visible(timeout=5_000)
        # No live feed in process (no broker): the page says so instead of spinning.
        sync_api.expect(page.get_by_text("The live feed is not available")).to_be_visible(timeout=5_000)
        page.reload()  # the session survives a reload (GET /v1/auth/me gives the CSRF token again)
        sync_api.expect(table).to_be_visible(timeout=5_000)
        page.screenshot(path=str(tmp_path / "fleet-now.png"), full_page=True)
        page.get_by_role("button", name="Log out").click()
        sync_api.expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=5_000)
        assert script_errors == [] and blocked == []
        page.close()


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/app/", timeout=10_000)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    sync_api.expect(page.locator("#fleet-table")).to_be_visible(timeout=5_000)


def test_a_stored_event_appears_in_the_live_feed_within_2_s_without_a_reload(browser: Any) -> None:
    """In process the hub's publish stands in for the job's write (the stack test measures from the row's
    writetime); the page stamps the moment the item enters the DOM, on the same clock."""
    context = LiveContext()
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(3), context)) as base:
        page = browser.new_page()
        log_in(page, base, "vera")
        sync_api.expect(page.get_by_text("Connected: new events appear")).to_be_visible(timeout=5_000)
        page.evaluate(
            """() => {
                window.notReloaded = true;
                window.seenAtMs = {};
                new MutationObserver((changes) => {
                    for (const change of changes)
                        for (const node of change.addedNodes) window.seenAtMs[node.dataset.key] = Date.now();
                }).observe(document.getElementById("live-feed"), { childList: true });
            }"""
        )
        event = live_event("van-0002", start_ms=int(time.time() * 1000) - 1_500)
        published_ms = time.time() * 1000
        context.publish(event)
        item = page.locator(f'#live-feed li[data-key="{event.key}"]')
        sync_api.expect(item).to_be_visible(timeout=5_000)
        latency_ms = page.evaluate(f"() => window.seenAtMs[{event.key!r}]") - published_ms
        assert latency_ms < 2_000, f"the event took {latency_ms:.0f} ms to show"
        assert page.evaluate("() => window.notReloaded") is True
        text = item.inner_text()
        assert "harsh brake" in text and "van-0002" in text and "0.60 g" in text and "s" in text
        page.close()


def test_the_login_and_fleet_pages_have_no_serious_accessibility_violations(browser: Any) -> None:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(5))) as base:
        page = browser.new_page(bypass_csp=True)  # the page's CSP refuses the injected axe script, rightly
        page.goto(base + "/app/", timeout=10_000)
        sync_api.expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=5_000)
        assert serious_violations(page) == []
        log_in(page, base, "vera")
        assert serious_violations(page) == []
        page.close()


def test_the_fleet_page_compares_todays_counts_per_kind_with_yesterdays(browser: Any) -> None:
    """The leaderboards need Cassandra: the browser's requests for them are answered here (Playwright's routing),
    shaped as GET /v1/leaderboards/vehicles answers."""
    today = datetime.now(UTC).date()
    counts = {
        str(today): [{"harsh_brake": 2}, {"harsh_brake": 1, "bump": 4}],
        str(today - timedelta(days=1)): [{"harsh_brake": 1}],
    }

    def leaderboard(route: Any) -> None:
        day = parse_qs(urlsplit(route.request.url).query)["at"][0]
        rows = [{"rank": n + 1, "id": f"van-{n}", "scorecard": {"event_counts": c}} for n, c in enumerate(counts[day])]
        route.fulfill(json={"subject": "vehicle", "period": "day", "first_day": day, "last_day": day, "rows": rows})

    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(2))) as base:
        page = browser.new_page()
        page.route("**/v1/leaderboards/vehicles?*", leaderboard)
        log_in(page, base, "vera")
        table = page.locator("#kind-counts")
        sync_api.expect(table).to_be_visible(timeout=5_000)
        rows = [r.split("\t") for r in table.locator("tbody tr").all_inner_texts()]
        assert rows == [
            ["bump", "4 events", "0 events", "+4 events"],
            ["harsh brake", "3 events", "1 event", "+2 events"],
        ]
        page.close()


def test_the_counts_per_kind_say_what_is_wrong_when_the_api_cannot_answer(browser: Any) -> None:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(2))) as base:
        page = browser.new_page()
        page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(status=503, json={"detail": "busy"}))
        log_in(page, base, "vera")
        alert = page.get_by_text("The counts per kind are not available (busy)")
        sync_api.expect(alert).to_be_visible(timeout=5_000)
        page.close()


def test_the_fleet_tables_csv_download_is_what_the_api_answers(browser: Any, tmp_path: Path) -> None:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(4))) as base:
        page = browser.new_page()
        page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(json={"rows": []}))
        log_in(page, base, "vera")
        with page.expect_download(timeout=5_000) as downloading:
            page.get_by_role("link", name="Download as CSV").click()
        saved = tmp_path / "fleet.csv"
        downloading.value.save_as(saved)
        answered = page.request.get(f"{base}/v1/fleet?format=csv")  # the page's cookie, as a program would ask
        assert answered.ok and saved.read_bytes() == answered.body()  # byte for byte (CRLF rows: RFC 4180)
        assert saved.read_text().splitlines()[0].startswith("vehicle_id,label,online")
        assert len(saved.read_text().splitlines()) == 1 + 4
        page.close()


@pytest.mark.parametrize(
    ("role", "links"),
    [
        (Role.VIEWER, ["Fleet now", "Drivers"]),
        (Role.MANAGER, ["Fleet now", "Drivers", "Review queue"]),
        (Role.ADMIN, ["Fleet now", "Drivers", "Review queue", "Admin"]),
    ],
)
def test_the_navigation_shows_a_role_only_the_pages_it_may_open(browser: Any, role: Role, links: list[str]) -> None:
    app = app_with({"ana": role}, snapshot_of(1))
    with serving(app) as base:
        page = browser.new_page()
        page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(json={"rows": []}))
        log_in(page, base, "ana")
        assert page.locator("#nav a").all_inner_texts() == links
        page.goto(base + "/app/#/admin")  # a link typed or shared: the page says why, not a wall of refusals
        if role is Role.ADMIN:
            sync_api.expect(page.get_by_role("heading", name="Admin")).to_be_visible()
            assert page.get_by_role("alert").count() == 0
        else:
            sync_api.expect(page.get_by_role("alert")).to_contain_text(f"you are logged in as a {role.label}")
        page.close()


def test_a_keyboard_user_keeps_focus_on_a_vehicle_link_across_the_tables_refresh(browser: Any) -> None:
    app = app_with({"vera": Role.VIEWER}, snapshot_of(5))
    with serving(app) as base:
        page = browser.new_page()
        page.clock.install()  # the page's 10 s refresh runs on the test's clock
        page.route("**/v1/leaderboards/vehicles?*", lambda route: route.fulfill(json={"rows": []}))
        log_in(page, base, "vera")
        page.locator("#fleet-table").get_by_role("link", name="van-0003", exact=True).focus()
        before = page.locator("#fleet-table tbody").element_handle()
        with page.expect_response(lambda r: r.url.endswith("/v1/fleet"), timeout=5_000) as refreshed:
            page.clock.run_for(11_000)
        assert refreshed.value.status == 200
        page.wait_for_function("body => !body.isConnected", arg=before, timeout=5_000)  # the table was rebuilt
        assert page.evaluate("() => document.activeElement.getAttribute('href')") == "#/vehicles/van-0003"
        page.close()


def test_the_feed_opens_with_the_last_hours_events_and_shows_a_streamed_one_once(browser: Any) -> None:
    context = LiveContext()
    now_ms = int(time.time() * 1000)
    earlier = live_event("van-0001", start_ms=now_ms - 600_000)
    asked: list[dict[str, list[str]]] = []

    def events(route: Any) -> None:
        asked.append(parse_qs(urlsplit(route.request.url).query))
        item = {"driver_id": None, "review_state": "new", "start": "x", "end": "x", **json.loads(earlier.to_json())}
        route.fulfill(json={"items": [item], "next_cursor": None})

    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(3), context)) as base:
        page = browser.new_page()
        page.route("**/v1/events?*", events)
        log_in(page, base, "vera")
        sync_api.expect(page.locator(f'#live-feed li[data-key="{earlier.key}"]')).to_be_visible(timeout=5_000)
        assert now_ms - 3_700_000 < int(asked[0]["from"][0]) < now_ms - 3_500_000  # the last hour
        sync_api.expect(page.get_by_text("Connected: new events appear")).to_be_visible(timeout=5_000)
        later = live_event("van-0002", start_ms=now_ms - 1_000)
        context.publish(earlier)  # a reconnect's replay, say: already shown
        context.publish(later)
        sync_api.expect(page.locator(f'#live-feed li[data-key="{later.key}"]')).to_be_visible(timeout=5_000)
        assert page.locator("#live-feed li").evaluate_all("items => items.map((li) => li.dataset.key)") == [
            later.key,
            earlier.key,
        ]
        page.close()
