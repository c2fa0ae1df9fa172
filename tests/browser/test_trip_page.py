"""The vehicle page (#/vehicles/<id>), the trip page (#/trips/<vehicle>/<start ms>) and the event page's link to its
trip, in a real browser. The routes they read need Cassandra, so the browser's requests for them are answered here
with JSON built from the routes' own pydantic models (a model change breaks these tests, not the page silently)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fleetsense.service.fleet_models import Event, EventPage, VehicleNow
from fleetsense.service.roles import Role
from fleetsense.service.routes_scores import Scorecard, ScorecardSeries
from fleetsense.service.routes_trips import TripDetail, TripEvent, TripMinute, TripPart, TripSummary
from fleetsense.service.routes_vehicle_admin import ClassOut
from fleetsense.service.scorecard import Period

from tests.browser.inprocess import PASSWORD, app_with, serving, snapshot_of
from tests.browser.page_checks import canvas_pixels, serious_violations

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

VAN = "van-0002"
MIN = 60_000
TRIP_START_MS = (int(time.time() * 1000) - 3 * 3_600_000) // MIN * MIN + 17_000  # 3 h ago, 17 s past a minute
TRIP_END_MS = TRIP_START_MS + 40 * MIN
Json = dict[str, Any]
Answer = Callable[[str, dict[str, list[str]]], tuple[int, Any]]  # (path, query) -> (status, body)


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def key(start_ms: int, kind: str) -> str:
    return f"{VAN}/{start_ms}/{kind}"


# The trip's events: two stops (its stopped spans), two harsh brakes 10 s apart (their markers must not hide each
# other), a bump, and a corner dismissed as a false positive.
EVENTS = [
    ("harsh_brake", 5 * MIN, 600, 0.52, "g", False),
    ("harsh_brake", 5 * MIN + 10_000, 700, 0.61, "g", False),
    ("stop", 10 * MIN, 90_000, 90.0, "s", False),
    ("bump", 12 * MIN, 150, 0.8, "g", False),
    ("stop", 25 * MIN, 60_000, 60.0, "s", False),
    ("harsh_corner_left", 30 * MIN, 900, 0.47, "g", True),
]
MARKED = [key(TRIP_START_MS + at, kind) for kind, at, *_ in EVENTS if kind != "stop"]
STOPS = [key(TRIP_START_MS + at, kind) for kind, at, *_ in EVENTS if kind == "stop"]


def trip_summary() -> TripSummary:
    counts = {"harsh_brake": 2, "bump": 1, "harsh_corner_left": 0}  # the dismissed corner is not counted
    return TripSummary(vehicle_id=VAN, start_ms=TRIP_START_MS, end_ms=TRIP_END_MS, duration_s=2_400.0, open=False,
                       event_counts=counts, score=71.5)  # fmt: skip


def trip_detail(*, minutes: bool = True) -> Json:
    events = [
        TripEvent(key=key(TRIP_START_MS + at, kind), kind=kind, start_ms=TRIP_START_MS + at,
                  end_ms=TRIP_START_MS + at + length, peak=peak, peak_unit=unit, dismissed=dismissed)
        for kind, at, length, peak, unit, dismissed in EVENTS
    ]  # fmt: skip
    first_minute = TRIP_START_MS // MIN * MIN
    rows = [
        TripMinute(minute_ms=first_minute + i * MIN, sample_count=6000, driving_s=60.0 - (i % 5) * 9,
                   max_longitudinal_g=0.1 + 0.4 * abs(math.sin(i / 3)), max_lateral_g=0.05 + 0.2 * abs(math.cos(i / 4)),
                   rms_vertical_g=0.04, event_counts={})
        for i in range(41)
    ]  # fmt: skip
    half = TRIP_START_MS + 20 * MIN
    parts = [
        TripPart(driver_id="driver-0002", start_ms=TRIP_START_MS, end_ms=half, event_counts={"harsh_brake": 2},
                 driving_s=1_100.0, score=64.0, event_keys=MARKED[:2]),
        TripPart(driver_id="driver-0007", start_ms=half, end_ms=TRIP_END_MS, event_counts={"bump": 1},
                 driving_s=1_050.0, score=100.0, event_keys=[]),
    ]  # fmt: skip
    detail = TripDetail(**trip_summary().model_dump(), events=events, minutes=rows if minutes else [], parts=parts)
    return detail.model_dump(mode="json")


def vehicle_now() -> Json:
    return VehicleNow(
        vehicle_id=VAN, label="KA-1234 (van 2)", online=True, status_reason="heartbeat", status_received_at=None,
        last_seen=None, last_seen_ms=int(time.time() * 1000) - 2_000, trip_open=False, trip_start=None,
        trip_start_ms=None, trip_duration_s=None, driver_id="driver-0002", events_today={"harsh_brake": 1},
        score_today=88.0, driving_s_today=5_400.0,
    ).model_dump(mode="json")  # fmt: skip


def scorecard() -> Json:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in range(6, -1, -1)]
    cards = [
        Scorecard(first_day=d, last_day=d, event_counts={"harsh_brake": n % 3}, driving_s=3_600.0 * (n % 2),
                  harsh_events=n % 3, events_per_hour=float(n % 3) if n % 2 else None, score=90.0 - n)
        for n, d in enumerate(days)
    ]  # fmt: skip
    return ScorecardSeries(subject="vehicle", id=VAN, period=Period.DAY, periods=cards).model_dump(mode="json")


def events_page() -> Json:
    items = [
        Event(key=key(TRIP_START_MS + at, kind), vehicle_id=VAN, driver_id="driver-0002", kind=kind,
              start=utc(TRIP_START_MS + at), start_ms=TRIP_START_MS + at, end=utc(TRIP_START_MS + at + length),
              end_ms=TRIP_START_MS + at + length, duration_ms=length, peak=peak, peak_unit=unit,
              review_state="dismissed" if dismissed else "new")
        for kind, at, length, peak, unit, dismissed in reversed(EVENTS)
    ]  # fmt: skip
    return EventPage(items=items, next_cursor=None).model_dump(mode="json")


def trace_of(event_key: str) -> Json:
    vehicle_id, start, kind = event_key.rsplit("/", 2)
    t_ms = [-10_000 + 10 * i for i in range(2001)]
    return {"event": {"key": event_key, "vehicle_id": vehicle_id, "kind": kind, "start_ms": int(start),
                      "end_ms": int(start) + 600, "duration_ms": 600, "peak": 0.52, "peak_unit": "g"},
            "vehicle_class": "van", "threshold_g": 0.45, "calibration": {"settled": True}, "t_ms": t_ms,
            "longitudinal_g": [0.0] * 2001, "lateral_g": [0.0] * 2001, "vertical_g": [0.0] * 2001}  # fmt: skip


def normal(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
    """The answers of a vehicle with a week of data and the one trip above."""
    base = f"/v1/vehicles/{VAN}"
    if path == base:
        return 200, vehicle_now()
    if path == f"{base}/scorecard":
        return 200, scorecard()
    if path == f"{base}/class":
        return 200, ClassOut(vehicle_id=VAN, vehicle_class="car", chosen=False).model_dump(mode="json")
    if path == f"{base}/trips":
        return 200, [trip_summary().model_dump(mode="json")]
    if path == f"{base}/trips/{TRIP_START_MS}":
        return 200, trip_detail()
    if path == f"{base}/events":
        return 200, events_page()
    if path.startswith("/v1/events/") and path.endswith("/trace"):
        return 200, trace_of(path.removeprefix("/v1/events/").removesuffix("/trace"))
    if path.startswith("/v1/reviews/"):
        return 404, {"detail": "no review"}
    return 404, {"detail": f"the test answers no {path}"}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(2))) as url:
        yield url


def open_page(
    browser: Any,
    base: str,
    hash_: str,
    answer: Answer = normal,
    *,
    axe: bool = False,
    zone: str = "UTC",
    size: tuple[int, int] = (1280, 800),
) -> tuple[Any, Any]:
    """A viewer logged in, on `hash_`, the analytic routes answered by `answer`; also the list of requests made
    (path, query) and of script errors or CSP refusals."""
    viewport = {"width": size[0], "height": size[1]}
    page = browser.new_page(viewport=viewport, bypass_csp=axe, timezone_id=zone)
    seen: Json = {"requests": [], "problems": []}
    page.on("pageerror", lambda error: seen["problems"].append(str(error)))
    page.on("console", lambda m: seen["problems"].append(m.text) if "Content Security Policy" in m.text else None)
    page.route("**/v1/leaderboards/**", lambda route: route.fulfill(json={"rows": []}))

    def route(r: Any) -> None:
        url = urlsplit(r.request.url)
        seen["requests"].append((url.path, parse_qs(url.query)))
        status, body = answer(url.path, parse_qs(url.query))
        r.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    for pattern in ("**/v1/vehicles/**", "**/v1/events/**", "**/v1/reviews/**"):
        page.route(pattern, route)
    page.goto(base + "/app/", timeout=10_000)
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    sync_api.expect(page.locator("#fleet-table")).to_be_visible(timeout=5_000)
    page.goto(f"{base}/app/{hash_}")
    return page, seen


def test_the_vehicle_page_shows_the_vehicle_its_scorecard_trips_and_events_each_leading_to_its_page(
    browser: Any, base: str
) -> None:
    page, seen = open_page(browser, base, f"#/vehicles/{VAN}")
    sync_api.expect(page.get_by_role("heading", name="Vehicle KA-1234 (van 2)")).to_be_visible(timeout=5_000)
    facts = page.locator("#vehicle-facts")
    assert "online" in facts.inner_text() and "88.0 / 100" in facts.inner_text() and "1 h 30 min" in facts.inner_text()
    assert facts.get_by_role("link", name="driver-0002").get_attribute("href") == "#/drivers/driver-0002"
    assert "car (the default: nobody set one)" in facts.inner_text()

    days = page.locator("#vehicle-scorecard tbody tr")
    sync_api.expect(days).to_have_count(7, timeout=5_000)
    today = datetime.now(UTC).strftime("%b %-d")
    assert f"{today} (UTC)" in days.first.inner_text()  # newest first: today's UTC day
    assert "85.0 / 100" in days.nth(1).inner_text() and "2.00 events/h" in days.nth(1).inner_text()
    assert "no driving" in page.locator("#vehicle-scorecard").inner_text()  # a day without driving has no score
    assert page.locator("#vehicle-scorecard").inner_text().count("events/h") >= 3

    trips = page.locator("#vehicle-trips tbody tr")
    sync_api.expect(trips).to_have_count(1)
    assert "40 min" in trips.first.inner_text() and "71.5 / 100" in trips.first.inner_text()
    trip_csv = page.locator("#vehicle-trips").locator("xpath=../..").get_by_role("link", name="Download as CSV")
    assert trip_csv.get_attribute("href").startswith(f"/v1/vehicles/{VAN}/trips?from_ms=")
    assert trip_csv.get_attribute("href").endswith("&format=csv")

    events = page.locator("#vehicle-events tbody tr")
    sync_api.expect(events).to_have_count(len(EVENTS))
    first = events.first
    assert "0.47 g" in first.inner_text() and "dismissed" in first.inner_text()
    corner = key(TRIP_START_MS + 30 * MIN, "harsh_corner_left")
    assert first.get_by_role("link").first.get_attribute("href") == f"#/events/{corner}"
    _, events_query = next(r for r in seen["requests"] if r[0].endswith("/events"))
    week_ms = int(events_query["to"][0]) - int(events_query["from"][0])
    assert week_ms == 7 * 86_400_000 and events_query["limit"] == ["50"]

    trips.first.get_by_role("link").click()  # the trip's start opens its page
    sync_api.expect(page).to_have_url(f"{base}/app/#/trips/{VAN}/{TRIP_START_MS}")
    sync_api.expect(page.locator("#trip-timeline")).to_be_visible(timeout=5_000)
    assert seen["problems"] == []
    page.close()


def test_the_trip_timeline_has_every_event_as_a_marker_reached_by_keyboard_and_its_minutes_charted(
    browser: Any, base: str
) -> None:
    page, seen = open_page(browser, base, f"#/trips/{VAN}/{TRIP_START_MS}")
    timeline = page.locator("#trip-timeline")
    sync_api.expect(timeline).to_be_visible(timeout=5_000)
    caption = timeline.locator("figcaption").inner_text()
    assert "stopped 2 times for 2 min" in caption and "4 events besides the stops" in caption
    markers = timeline.locator("a.tl-marker")
    assert sorted(markers.evaluate_all("ms => ms.map((m) => m.dataset.key)")) == sorted(MARKED)
    assert timeline.locator("a.tl-stopped").count() == 2 and timeline.locator(".tl-moving").count() == 3
    assert timeline.locator("a.tl-dismissed").count() == 1
    # The two brakes 10 s apart sit in two rows, so neither hides the other.
    tops = {m.evaluate("m => m.getBoundingClientRect().top") for m in markers.all()[:2]}
    assert len(tops) == 2, tops
    assert markers.first.get_attribute("aria-label").startswith("harsh brake at ")
    assert "peak 0.52 g" in markers.first.get_attribute("aria-label")

    # Tab from the top of the page reaches every stop and every marker, in time order within a lane.
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        inside = page.evaluate("() => !!document.activeElement.closest('#trip-timeline')")
        if not inside and reached:
            break  # past the timeline
        if inside:
            reached.append(page.evaluate("() => document.activeElement.getAttribute('href')").removeprefix("#/events/"))
    assert reached == STOPS + MARKED

    parts = page.locator("#trip-parts tbody tr")
    assert parts.count() == 2
    assert parts.nth(1).get_by_role("link", name="driver-0007").get_attribute("href") == "#/drivers/driver-0007"
    assert "64.0 / 100" in parts.first.inner_text() and "18 min" in parts.first.inner_text()
    csv = page.locator("#trip-events").locator("xpath=../..").get_by_role("link", name="Download as CSV")
    assert csv.get_attribute("href") == f"/v1/vehicles/{VAN}/events?from={TRIP_START_MS}&to={TRIP_END_MS}&format=csv"

    # The minute charts have drawn: their series' colours on the canvases, not just canvases.
    sync_api.expect(page.locator("#minute-acceleration canvas")).to_be_visible(timeout=5_000)
    colours = page.evaluate("async () => (await import('/app/js/minute_charts.js')).MINUTE_COLOURS")
    moving = canvas_pixels(page, "#minute-moving canvas", colours["moving"])["series"]
    longitudinal = canvas_pixels(page, "#minute-acceleration canvas", colours["longitudinal"])["series"]
    print(f"minute charts: {moving} moving-bar pixels, {longitudinal} longitudinal-line pixels")
    assert moving > 5_000 and longitudinal > 300, (moving, longitudinal)
    legend = page.locator("#minute-charts").inner_text()
    assert "moving time (s)" not in legend  # axis labels are on the canvas; the legend names the series
    assert "longitudinal (largest)" in legend and "Largest longitudinal: 0.50 g" in legend

    # Enter on a focused marker opens its event page.
    markers.nth(2).focus()
    page.keyboard.press("Enter")
    sync_api.expect(page).to_have_url(f"{base}/app/#/events/{MARKED[2]}")
    sync_api.expect(page.get_by_role("heading", name=f"Bump on {VAN}")).to_be_visible(timeout=5_000)
    assert seen["problems"] == []
    page.close()


def test_the_event_page_links_to_the_trip_holding_the_event_or_says_there_is_none(browser: Any, base: str) -> None:
    brake = MARKED[0]
    page, seen = open_page(browser, base, f"#/events/{brake}")
    line = page.locator("#event-trip")
    sync_api.expect(line.get_by_role("link")).to_have_attribute("href", f"#/trips/{VAN}/{TRIP_START_MS}", timeout=5_000)
    assert "(40 min)" in line.inner_text()
    _, query = next(r for r in seen["requests"] if r[0] == f"/v1/vehicles/{VAN}/trips")
    assert query["to_ms"] == [str(TRIP_START_MS + 5 * MIN + 1)] and query["limit"] == ["1"]

    # The long stop that ended the trip starts where the trip ends: not in it, but the page says which it ended.
    page.goto(f"{base}/app/#/events/{key(TRIP_END_MS, 'stop')}")
    sync_api.expect(line).to_contain_text("Not part of a recorded trip: it started as the trip from", timeout=5_000)
    # An event well after the newest trip had ended.
    page.goto(f"{base}/app/#/events/{key(TRIP_END_MS + 5 * MIN, 'temperature_excursion_high')}")
    sync_api.expect(line).to_have_text(
        "Not part of a recorded trip (the vehicle was not on a trip when it started).", timeout=5_000
    )
    page.goto(f"{base}/app/#/events/{brake}")
    line.get_by_role("link").click()
    sync_api.expect(page.locator("#trip-timeline")).to_be_visible(timeout=5_000)
    assert seen["problems"] == []
    page.close()


def test_empty_and_failed_reads_say_what_to_do(browser: Any, base: str) -> None:
    def nothing(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path.endswith("/trips"):
            return 200, []
        if path.endswith("/events"):
            return 200, EventPage(items=[], next_cursor=None).model_dump(mode="json")
        if path.endswith("/scorecard"):
            return 503, {"detail": "Cassandra is unreachable: check `fleetsense stack status`"}
        if path.endswith(f"/trips/{TRIP_START_MS}"):
            return 200, trip_detail(minutes=False)
        return normal(path, query)

    page, _ = open_page(browser, base, f"#/vehicles/{VAN}", nothing)
    sync_api.expect(page.locator("#vehicle-trips-empty")).to_contain_text("No trips in the last 7 days", timeout=5_000)
    sync_api.expect(page.locator("#vehicle-events-empty")).to_contain_text("No events in the last 7 days")
    sync_api.expect(page.get_by_role("alert")).to_have_text(
        "The scorecard could not be read: Cassandra is unreachable: check `fleetsense stack status`. "
        "Reload the page to try again."
    )
    page.goto(f"{base}/app/#/trips/{VAN}/{TRIP_START_MS}")  # a trip whose minutes are not written yet
    sync_api.expect(page.locator("#minute-charts")).to_contain_text("No minute rows are stored", timeout=5_000)
    page.goto(f"{base}/app/#/trips/{VAN}/12345")  # no such trip: the API's sentence and the way to its trips
    alert = page.get_by_role("alert")
    sync_api.expect(alert).to_contain_text("the test answers no", timeout=5_000)
    assert alert.get_by_role("link").get_attribute("href") == f"#/vehicles/{VAN}"
    page.goto(f"{base}/app/#/trips/nonsense")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("This is no trip's address", timeout=5_000)
    page.close()

    def gone(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/v1/vehicles/van-9999":
            return 404, {"detail": "'van-9999' is no vehicle of this fleet: GET /v1/vehicles lists them"}
        if path.startswith("/v1/vehicles/van-9999/"):  # as the API answers for a vehicle without rows
            empty = {"trips": [], "events": EventPage(items=[], next_cursor=None).model_dump(mode="json")}
            return 200, empty.get(path.rsplit("/", 1)[1], scorecard())
        return 401, {"detail": "not logged in"}  # the session has ended

    page, _ = open_page(browser, base, "#/vehicles/van-9999", gone)
    sync_api.expect(page.get_by_role("alert")).to_have_text(
        "'van-9999' is no vehicle of this fleet: GET /v1/vehicles lists them. Open a vehicle from the Fleet now page.",
        timeout=5_000,
    )
    page.goto(f"{base}/app/#/trips/{VAN}/{TRIP_START_MS}")  # a 401: back to the login form, saying why
    sync_api.expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=5_000)
    sync_api.expect(page.get_by_text("Your session has ended: log in again.")).to_be_visible()
    page.close()


def test_the_vehicle_and_trip_pages_have_no_serious_accessibility_violations(browser: Any, base: str) -> None:
    page, _ = open_page(browser, base, f"#/vehicles/{VAN}", axe=True)
    sync_api.expect(page.locator("#vehicle-events")).to_be_visible(timeout=5_000)
    assert serious_violations(page) == []
    page.goto(f"{base}/app/#/trips/{VAN}/{TRIP_START_MS}")
    sync_api.expect(page.locator("#minute-acceleration canvas")).to_be_visible(timeout=5_000)
    assert serious_violations(page) == []
    page.close()


def test_the_trip_page_fits_a_tablet_and_shows_the_operators_zone(browser: Any, base: str) -> None:
    zone = "America/St_Johns"  # UTC-3:30 (or -2:30): a clock whose whole minutes are not UTC's
    page, _ = open_page(browser, base, f"#/trips/{VAN}/{TRIP_START_MS}", zone=zone, size=(1024, 768))
    sync_api.expect(page.locator("#minute-acceleration canvas")).to_be_visible(timeout=5_000)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 1024 px"
    local = datetime.fromtimestamp(TRIP_START_MS / 1000, ZoneInfo(zone))
    assert local.strftime("%I:%M:%S %p") in page.locator("#trip-facts").inner_text()
    assert page.locator("#trip-timeline").get_by_text(f"time ({zone})").is_visible()
    ticks = page.locator("#trip-timeline .tl-tick").all_inner_texts()
    assert len(ticks) == 4 and all(t.endswith("0 PM") or t.endswith("0 AM") for t in ticks), ticks  # 10 min apart
    page.close()
