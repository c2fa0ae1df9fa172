"""The drivers' pages: the leaderboard (#/drivers) with its period picker, trends and "dropped most", and a driver's
scorecard (#/drivers/<id>) with its chart, events, trips and assignments. Those routes read Cassandra, which the
in-process app has not: the browser's requests for them are answered here (Playwright's routing) with JSON built
from the routes' own pydantic models and ranking code, so a change of either breaks these tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fleetsense.cloud import tables
from fleetsense.service import assignment_writes, drivers
from fleetsense.service import scorecard as sc
from fleetsense.service.fleet_models import Event, EventPage
from fleetsense.service.roles import Role
from fleetsense.service.routes_assignments import AssignmentOut
from fleetsense.service.routes_drivers import DriverOut
from fleetsense.service.routes_scores import Leaderboard, Scorecard, ScorecardSeries, _ranked, _row
from fleetsense.service.routes_trips import TripSummary
from fleetsense.service.settings import ServeSettings

from tests.browser.inprocess import PASSWORD, LiveContext, app_with, serving, snapshot_of
from tests.browser.page_checks import canvas_pixels, serious_violations
from tests.unit.service_memory_db import MemoryDb

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

AT = date(2026, 11, 18)  # a Wednesday: the ISO week 2026-11-16 to 2026-11-22
H = 3600.0
# id: (name, (counts, driving_s) this period, (counts, driving_s) the period before)
DRIVERS: dict[str, tuple[str, tuple[dict[str, int], float], tuple[dict[str, int], float]]] = {
    "ann-01": ("Ann Archer", ({"harsh_brake": 1}, 10 * H), ({"harsh_brake": 1}, 10 * H)),
    "bob-02": ("Bob Baker", ({"harsh_brake": 6, "harsh_corner_left": 2}, 5 * H), ({"harsh_brake": 1}, 5 * H)),
    "cy-03": ("Cy Cole", ({"bump": 4}, 2 * H), ({"harsh_brake": 3}, 2 * H)),
    "dee-04": ("Dee Dunn", ({}, 0.0), ({"harsh_brake": 1}, 3 * H)),
    "eve-05": ("Eve East", ({"harsh_brake": 2}, 4 * H), ({}, 4 * H)),
}


def leaderboard(period: sc.Period = sc.Period.WEEK, at: date = AT) -> Leaderboard:
    """What GET /v1/leaderboards/drivers answers for these drivers: the route's own row and ranking code."""
    span = sc.periods_back(period, at, 2)[1]
    rows = [
        _row(ident, name, span, sc.tally(*now), sc.tally(*before)) for ident, (name, now, before) in DRIVERS.items()
    ]
    return _ranked("driver", period, span, rows)


def scorecards(period: sc.Period, at: date, count: int) -> ScorecardSeries:
    """Ann's periods: more harsh braking each period, and one without driving (a gap in the chart)."""
    cards = []
    for n, (first, last) in enumerate(sc.periods_back(period, at, count)):
        driving_s = 0.0 if n == 3 else 8 * H
        tally = sc.tally({"harsh_brake": n // 2, "bump": 1}, driving_s)
        cards.append(
            Scorecard(
                first_day=first,
                last_day=last,
                event_counts=tally.counts,
                driving_s=tally.driving_s,
                harsh_events=tally.harsh_events,
                events_per_hour=tally.events_per_hour,
                score=tally.score,
            )
        )
    return ScorecardSeries(subject="driver", id="ann-01", period=period, periods=cards)


MONDAY_MS = int(datetime(2026, 11, 16, tzinfo=UTC).timestamp() * 1000)


def event(start_ms: int, kind: str, peak: float) -> Event:
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    return Event(key=f"van-0002/{start_ms}/{kind}", vehicle_id="van-0002", driver_id="ann-01", kind=kind, start=start,
                 start_ms=start_ms, end=start + timedelta(milliseconds=700), end_ms=start_ms + 700, duration_ms=700,
                 peak=peak, peak_unit="g", review_state="new")  # fmt: skip


def moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def assignment(vehicle_id: str, from_ms: int, to_ms: int | None) -> AssignmentOut:
    return AssignmentOut.model_validate({"vehicle_id": vehicle_id, "driver_id": "ann-01", "from": moment(from_ms),
                                         "to": moment(to_ms), "from_ms": from_ms, "to_ms": to_ms, "source": "api",
                                         "set_by": "mona", "set_at": None})  # fmt: skip


ASSIGNMENTS = [assignment("van-0002", MONDAY_MS + 6 * 3_600_000, MONDAY_MS + 30 * 3_600_000),
               assignment("van-0007", MONDAY_MS - 30 * 86_400_000, MONDAY_MS - 20 * 86_400_000)]  # fmt: skip
TRIP_MS = MONDAY_MS + 7 * 3_600_000
EVENTS = [event(MONDAY_MS + 9 * 3_600_000, "harsh_brake", 0.52), event(MONDAY_MS + 8 * 3_600_000, "bump", 0.9)]
ANN = DriverOut(driver_id="ann-01", name="Ann Archer", employee_no="E-17", badge_id=None, manager="mona",
                created_at=None, retired_at=None, active=True)  # fmt: skip


class Api:
    """Answers the Cassandra-backed routes the drivers' pages read and records what the browser asked for; the rest
    (login, me) goes to the real app. `fail` maps a path's start to a status the next requests get."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.problems: list[str] = []  # the page's script errors and CSP refusals: none expected
        self.fail: dict[str, int] = {}
        self.board: Callable[[sc.Period, date], Leaderboard] = leaderboard

    def __call__(self, route: Any) -> None:
        url = urlsplit(route.request.url)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        for start, code in self.fail.items():
            if path.startswith(start):
                self.asked.append(f"{path}?{url.query}")
                route.fulfill(status=code, json={"detail": "Cassandra did not answer in time"})
                return
        answer: Any = None
        if path == "/v1/leaderboards/drivers":
            answer = self.board(sc.Period(query["period"]), date.fromisoformat(query["at"]))
        elif path == "/v1/drivers/ann-01":
            answer = ANN
        elif path.startswith("/v1/drivers/nobody-9"):
            route.fulfill(status=404, json={"detail": "no driver nobody-9"})
            return
        elif path == "/v1/drivers/ann-01/scorecard":
            answer = scorecards(sc.Period(query["period"]), date.fromisoformat(query["at"]), int(query["series"]))
        elif path == "/v1/drivers/ann-01/events":
            answer = EventPage(items=EVENTS, next_cursor=None)
        elif path == "/v1/drivers/ann-01/assignments":
            answer = ASSIGNMENTS
        elif path.startswith("/v1/vehicles/") and path.endswith("/trips"):
            trip = TripSummary(vehicle_id=path.split("/")[3], start_ms=TRIP_MS, end_ms=TRIP_MS + 2_700_000,
                               duration_s=2_700.0, open=False, event_counts={"harsh_brake": 1}, score=87.5)  # fmt: skip
            inside = int(query["from_ms"]) <= TRIP_MS < int(query["to_ms"])
            answer = [trip] if inside else []
        else:
            route.fallback()
            return
        self.asked.append(f"{path}?{url.query}")
        body = [a.model_dump(mode="json", by_alias=True) for a in answer] if isinstance(answer, list) else answer
        route.fulfill(json=body if isinstance(body, list) else body.model_dump(mode="json", by_alias=True))


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(2))) as url:
        yield url


def open_page(browser: Any, base: str, hash_: str, api: Api, *, axe: bool = False) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="Europe/Paris",
                            bypass_csp=axe)  # fmt: skip
    page.route("**/v1/**", api)
    problems = api.problems
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text and not axe else None)
    page.goto(f"{base}/app/{hash_}", timeout=10_000)
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    return page


def board_of(page: Any, table: str) -> list[str]:
    rows = page.locator(f"#{table} tbody tr")
    sync_api.expect(rows.first).to_be_visible(timeout=5_000)
    return [row.locator("th a").inner_text() for row in rows.all()]


def test_the_leaderboard_ranks_drivers_with_rates_per_kind_trends_and_who_dropped_most(browser: Any, base: str) -> None:
    api = Api()
    page = open_page(browser, base, "#/drivers?period=week&at=2026-11-18", api)
    want = leaderboard()
    assert board_of(page, "driver-board") == [r.name for r in want.rows]
    scores = [r.scorecard.score for r in want.rows if r.scorecard.driving_s > 0]
    assert scores == sorted(scores, reverse=True) and want.rows[-1].id == "dee-04"  # undriven last
    assert api.asked[0] == "/v1/leaderboards/drivers?period=week&at=2026-11-18"
    caption = page.locator("#driver-board caption").inner_text()
    assert "5 drivers ranked by score, 2026-11-16 to 2026-11-22 (UTC days)" in caption
    bob = page.locator("#driver-board tbody tr", has_text="Bob Baker").inner_text()
    bob_row = next(r for r in want.rows if r.id == "bob-02")
    assert f"{bob_row.scorecard.score:.1f} / 100" in bob, bob
    assert "1.20/h" in bob  # 6 harsh brakes in 5 h, in its kind's column
    assert "0.40/h" in bob  # 2 left corners in 5 h
    assert f"\N{MINUS SIGN}{abs(bob_row.trend or 0):.1f} points" in bob
    assert "no driving" in page.locator("#driver-board tbody tr", has_text="Dee Dunn").inner_text()
    headers = page.locator("#driver-board thead").inner_text()
    assert "harsh brake, events/h" in headers and "bump, events/h" in headers and "Trend" in headers
    fallen = sorted((r for r in want.rows if r.trend is not None and r.trend < 0), key=lambda r: r.trend or 0)
    assert [r.id for r in fallen] == ["bob-02", "eve-05"]
    assert board_of(page, "driver-dropped") == [r.name for r in fallen]
    link = page.locator("#driver-board tbody tr th a").first
    assert link.get_attribute("href") == f"#/drivers/{want.rows[0].id}?period=week&at=2026-11-18"
    for table in ("driver-board", "driver-dropped"):  # the CSV is the table's own query, as CSV
        csv = page.locator(f"#{table} ~ a.csv, .table-view:has(#{table}) a.csv").first.get_attribute("href")
        assert csv == f"{api.asked[0]}&format=csv"
    assert api.problems == []
    page.close()


def test_the_period_picker_by_keyboard_changes_the_query_and_a_reload_keeps_it(browser: Any, base: str) -> None:
    api = Api()
    page = open_page(browser, base, "#/drivers", api)
    board_of(page, "driver-board")
    today = datetime.now(UTC).date().isoformat()
    assert api.asked == [f"/v1/leaderboards/drivers?period=week&at={today}"]  # no period asked: this week, UTC
    page.get_by_label("Period", exact=True).focus()
    page.keyboard.type("M")  # a closed select's type-ahead: Month
    page.keyboard.press("Tab")
    page.keyboard.type("10072026")  # en-US: mm dd yyyy
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#driver-board caption")).to_contain_text("2026-10-01 to 2026-10-31", timeout=5_000)
    assert api.asked[-1] == "/v1/leaderboards/drivers?period=month&at=2026-10-07"
    assert page.url.endswith("#/drivers/?period=month&at=2026-10-07")
    assert page.evaluate("document.activeElement.id") == "period-at"  # the focus stays where the keyboard was
    for _ in range(6):  # Tab on through the date's fields and Show to "← Previous"
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "← Previous":
            break
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#driver-board caption")).to_contain_text("2026-09-01 to 2026-09-30", timeout=5_000)
    assert api.asked[-1] == "/v1/leaderboards/drivers?period=month&at=2026-09-01"
    page.reload()
    sync_api.expect(page.locator("#driver-board caption")).to_contain_text("2026-09-01 to 2026-09-30", timeout=5_000)
    assert api.asked[-1] == "/v1/leaderboards/drivers?period=month&at=2026-09-01"
    assert page.get_by_label("Period", exact=True).input_value() == "month"
    # A driver's link by keyboard: Enter opens their scorecard for the same period.
    page.locator("#driver-board").get_by_role("link", name="Ann Archer").focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#score-chart canvas")).to_be_visible(timeout=5_000)
    assert "/v1/drivers/ann-01/scorecard?period=month&at=2026-09-01&series=12" in api.asked
    page.go_back()  # Back: the leaderboard of the period left, then the one before it
    sync_api.expect(page.locator("#driver-board caption")).to_contain_text("2026-09-01 to 2026-09-30", timeout=5_000)
    page.go_back()
    sync_api.expect(page.locator("#driver-board caption")).to_contain_text("2026-10-01 to 2026-10-31", timeout=5_000)
    assert page.get_by_label("A day of it (UTC)").input_value() == "2026-10-07"
    assert api.problems == []
    page.close()


def test_empty_and_error_states_say_what_to_do_and_show_retries(browser: Any, base: str) -> None:
    api = Api()
    api.board = lambda period, at: Leaderboard(subject="driver", period=period, first_day=at, last_day=at, rows=[])
    page = open_page(browser, base, "#/drivers/?period=day&at=2026-11-18", api)
    sync_api.expect(page.locator("#driver-board-empty")).to_contain_text("No drivers are registered yet", timeout=5_000)
    api.fail["/v1/leaderboards/"] = 500
    page.get_by_role("button", name="Show").click()
    alert = page.get_by_role("alert")
    sync_api.expect(alert).to_contain_text("The leaderboard could not be read: Cassandra did not answer", timeout=5_000)
    assert "Press Show to try again" in alert.inner_text()
    del api.fail["/v1/leaderboards/"]
    api.board = leaderboard
    page.get_by_role("button", name="Show").click()
    sync_api.expect(page.locator("#driver-board tbody tr")).to_have_count(5, timeout=5_000)
    page.goto(f"{base}/app/#/drivers/nobody-9")
    sync_api.expect(page.get_by_text("There is no driver nobody-9")).to_be_visible(timeout=5_000)
    api.fail["/v1/drivers/ann-01/scorecard"] = 503
    page.goto(f"{base}/app/#/drivers/ann-01?period=week&at=2026-11-18")
    sync_api.expect(page.get_by_text("The scorecard could not be read")).to_be_visible(timeout=5_000)
    sync_api.expect(page.get_by_role("heading", name="Ann Archer")).to_be_visible()  # the rest still shows
    sync_api.expect(page.locator("#driver-assignments tbody tr")).to_have_count(2)
    api.fail["/v1/leaderboards/"] = 401  # the session ended (expired, or logged out elsewhere): back to the login
    page.get_by_role("link", name="← All drivers").click()
    sync_api.expect(page.get_by_text("Your session has ended: log in again.")).to_be_visible(timeout=5_000)
    assert page.get_by_label("Username").is_visible()
    assert api.problems == []
    page.close()


def score_pixels(page: Any) -> dict[str, int]:
    return canvas_pixels(page, "#score-chart canvas", "#0b5cad")  # score_chart.js's SCORE_COLOURS.score


def test_a_drivers_scorecard_draws_the_score_over_time_and_lists_events_trips_and_assignments(
    browser: Any, base: str
) -> None:
    api = Api()
    page = open_page(browser, base, "#/drivers/ann-01?period=week&at=2026-11-18", api)
    sync_api.expect(page.get_by_role("heading", name="Ann Archer")).to_be_visible(timeout=5_000)
    assert "mona" in page.locator("dl.facts").inner_text()
    sync_api.expect(page.locator("#score-chart canvas")).to_be_visible(timeout=5_000)
    drawn = score_pixels(page)
    assert drawn["series"] > 150 and drawn["distinct"] > 3, drawn  # the score's line and points, not a blank canvas
    legend = page.locator("#score-chart").inner_text()
    told = page.locator("#score-chart [role=img]").get_attribute("aria-label")  # what a screen reader hears
    assert told.startswith("Score per period from 2026-08-31 to 2026-11-22 (UTC days): 100.0 / 100"), told
    assert "score (of 100)" in legend and "harsh events per hour" in legend
    assert "/v1/drivers/ann-01/scorecard?period=week&at=2026-11-18&series=12" in api.asked
    periods = page.locator("#driver-periods tbody tr")
    assert periods.count() == 12 and "2026-11-16 to 2026-11-22" in periods.first.inner_text()
    assert "no driving" in periods.nth(8).inner_text()  # the 4th oldest of 12: the chart's gap
    csv = page.locator(".table-view:has(#driver-periods) a.csv").get_attribute("href")
    assert csv == "/v1/drivers/ann-01/scorecard?period=week&at=2026-11-18&series=12&format=csv"
    kinds = page.locator("#driver-kinds").inner_text()
    assert "harsh brake" in kinds and "5 events" in kinds and "0.63 events/h" in kinds  # 5 in 8 h
    events = page.locator("#driver-events tbody tr")
    sync_api.expect(events).to_have_count(2, timeout=5_000)
    assert events.first.locator("a").first.get_attribute("href") == f"#/events/{EVENTS[0].key}"
    assert EVENTS[0].key == f"van-0002/{MONDAY_MS + 9 * 3_600_000}/harsh_brake"
    assert "0.52 g" in events.first.inner_text()
    week = f"from={MONDAY_MS}&to={MONDAY_MS + 7 * 86_400_000}"
    assert f"/v1/drivers/ann-01/events?{week}&limit=100" in api.asked
    csv = page.locator(".table-view:has(#driver-events) a.csv").get_attribute("href")
    assert csv == f"/v1/drivers/ann-01/events?{week}&format=csv"
    trips = page.locator("#driver-trips tbody tr")
    sync_api.expect(trips).to_have_count(1, timeout=5_000)  # van-0002's trip in the week; van-0007's was before it
    assert trips.first.locator("a").first.get_attribute("href") == f"#/trips/van-0002/{TRIP_MS}"
    assert "45 min" in trips.first.inner_text() and "87.5 / 100" in trips.first.inner_text()
    assigned = page.locator("#driver-assignments tbody tr")
    assert assigned.count() == 2 and assigned.first.locator("a").get_attribute("href") == "#/vehicles/van-0002"
    assert api.problems == []
    page.close()


@pytest.mark.parametrize(
    ("hash_", "ready"),
    [
        ("#/drivers/?period=week&at=2026-11-18", "#driver-dropped"),
        ("#/drivers/ann-01?period=week&at=2026-11-18", "#driver-trips"),
    ],
)
def test_the_drivers_pages_have_no_serious_accessibility_violations(
    browser: Any, base: str, hash_: str, ready: str
) -> None:
    page = open_page(browser, base, hash_, Api(), axe=True)  # the page's CSP refuses an injected axe script, rightly
    sync_api.expect(page.locator(ready)).to_be_visible(timeout=5_000)
    assert serious_violations(page) == []
    page.close()


# --- The real routes over the in-memory database ------------------------------------------------------------------
# The leaderboard, scorecard, driver and assignments routes run their own code over tests/unit's MemoryDb, seeded
# through the registry's write code and with minute rows as the job writes them. (The event and trip lists slice a
# partition with a CQL suffix the MemoryDb does not model: the page's requests for them are answered here, empty.)
SEEDED_WEEK = sc.period_days(sc.Period.WEEK, AT)
# id: (name, harsh brakes in the week before, harsh brakes in the week): an hour of driving in each week
SEEDED = {"ann-01": ("Ann Archer", 0, 0), "bob-02": ("Bob Baker", 0, 3), "cy-03": ("Cy Cole", 2, 0)}


def seeded_db() -> MemoryDb:
    db = MemoryDb()
    fleet = ServeSettings().fleet_id
    since_ms = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)

    async def registry() -> None:
        for n, (ident, (name, _, _)) in enumerate(SEEDED.items(), start=1):
            await drivers.save_driver(db, fleet, drivers.Driver(driver_id=ident, name=name, manager="mona",
                                                                created_ms=since_ms), before=None)  # fmt: skip
            await assignment_writes.create(db, fleet, vehicle_id=f"van-{n:04d}", driver_id=ident, from_ms=since_ms,
                                           source="api", set_by="mona", now_ms=since_ms)  # fmt: skip

    with ThreadPoolExecutor(max_workers=1) as seeder:  # Playwright's sync API holds this thread's event loop
        seeder.submit(asyncio.run, registry()).result()
    for n, (_, (_, brakes_before, brakes_now)) in enumerate(SEEDED.items(), start=1):
        for day, brakes in (
            (SEEDED_WEEK[0] - timedelta(days=6), brakes_before),
            (SEEDED_WEEK[0] + timedelta(days=1), brakes_now),
        ):
            start_ms = int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp() * 1000)
            for minute in range(60):
                counts = {"harsh_brake": 1} if minute < brakes else {}
                db.put(tables.MINUTE_AGGREGATES, vehicle_id=f"van-{n:04d}", day_bucket=day,
                       minute=start_ms + minute * 60_000, driving_s=60.0, event_counts=counts)  # fmt: skip
    return db


@pytest.fixture(scope="module")
def seeded_base() -> Iterator[str]:
    context = LiveContext()
    context.db = seeded_db()  # type: ignore[assignment]  # Db's interface, over dicts
    with serving(app_with({"vera": Role.VIEWER}, snapshot_of(3), context)) as url:
        yield url


def test_the_real_leaderboard_and_scorecard_routes_drive_the_pages_and_the_csv_is_what_the_api_answers(
    browser: Any, seeded_base: str, tmp_path: Path
) -> None:
    api = Api()
    page = browser.new_page(viewport={"width": 1024, "height": 768}, locale="en-US")
    page.route("**/v1/drivers/*/events?*", lambda r: r.fulfill(json=EventPage(items=[], next_cursor=None).model_dump()))
    page.route("**/v1/vehicles/*/trips?*", lambda r: r.fulfill(json=[]))
    page.on("pageerror", lambda error: api.problems.append(str(error)))
    page.goto(f"{seeded_base}/app/#/drivers/?period=week&at={AT.isoformat()}", timeout=10_000)
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    # Logged in once the board shows (the session cookie is set): then ask the API as a program would
    assert board_of(page, "driver-board") == ["Ann Archer", "Cy Cole", "Bob Baker"]
    board = page.request.get(f"{seeded_base}/v1/leaderboards/drivers?period=week&at={AT.isoformat()}").json()
    assert [r["id"] for r in board["rows"]] == ["ann-01", "cy-03", "bob-02"]  # the route's ranking of the seed
    assert board_of(page, "driver-dropped") == ["Bob Baker"]
    cy = page.locator("#driver-board tbody tr", has_text="Cy Cole").inner_text()
    assert f"+{board['rows'][1]['trend']:.1f} points" in cy and "1 h 0 min driving" in cy
    assert "3.00/h" in page.locator("#driver-board tbody tr", has_text="Bob Baker").inner_text()  # 3 brakes in 1 h
    with page.expect_download(timeout=5_000) as downloading:
        page.locator(".table-view:has(#driver-board) a.csv").click()
    saved = tmp_path / "drivers.csv"
    downloading.value.save_as(saved)
    href = page.locator(".table-view:has(#driver-board) a.csv").get_attribute("href")
    answered = page.request.get(seeded_base + href)
    assert answered.ok and saved.read_bytes() == answered.body()  # byte for byte what the API answers
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("rank,id,name,scorecard") and len(lines) == 1 + 3
    page.locator("#driver-board").get_by_role("link", name="Bob Baker").click()
    sync_api.expect(page.get_by_role("heading", name="Bob Baker")).to_be_visible(timeout=5_000)
    sync_api.expect(page.locator("#score-chart canvas")).to_be_visible(timeout=5_000)
    assert score_pixels(page)["series"] > 50  # twelve weeks: two driven, ten gaps
    first = page.locator("#driver-periods tbody tr").first.inner_text()
    assert "2026-11-16 to 2026-11-22" in first and "3 events" in first and "1 h 0 min" in first
    sync_api.expect(page.locator("#driver-assignments tbody tr")).to_have_count(1)
    assert page.locator("#driver-assignments a").get_attribute("href") == "#/vehicles/van-0002"
    sync_api.expect(page.locator("#driver-events-empty")).to_contain_text("No events in this period")
    sync_api.expect(page.locator("#driver-trips-empty")).to_contain_text("No trips started")
    page.screenshot(path=str(tmp_path / "driver-scorecard-tablet.png"), full_page=True)
    assert api.problems == []
    page.close()
