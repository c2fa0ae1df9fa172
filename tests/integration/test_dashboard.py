"""The dashboard against the real stack (issue 18's quality bar): Debian's chromium drives the pages the stack's API
process serves at /app/, over the simulator's scripted drive stored by the real job. Each role logs in through the
page; a viewer sees no admin link and requests forged from its page are refused; the drive's harsh brakes appear in
the live feed within 2 s of their rows' write, without a reload; the event page's chart has drawn (its pixels, not
just a canvas); the fleet table's CSV download equals the API's JSON; every page app.js declares passes axe-core,
fits a 1280x800 laptop's and a 1024x768 tablet's window without scrolling sideways, shows no error, and is saved as
a screenshot under <data dir>/artifacts/dashboard/ at both sizes."""

from __future__ import annotations

import csv
import json
import re
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fleetsense.edge.runtime import send_outbox
from fleetsense.service.web_assets import WEB_DIR

from fleetsense.stack.api import Api
from fleetsense.stack.api_accounts import ensure_demo_admin
from fleetsense.stack.layout import StackConfig
from fleetsense.stack.secrets import load_or_create
from tests.browser.chromium import chromium
from tests.browser.inprocess import AXE
from tests.browser.page_checks import canvas_pixels, serious_violations

from .helpers import eventually, provision_vehicle, unique_vehicle
from .test_analytics_pipeline import ScriptedDrive, record_scripted_drive
from .test_live_events import written_at_s

pytestmark = [pytest.mark.integration, pytest.mark.browser]

T = TypeVar("T")
APP_JS = WEB_DIR / "static" / "js" / "app.js"
AXE_URL = "/app/axe-for-the-test.js"  # served to the page by the test (same origin: the page's CSP allows it)
FEED_TARGET_S = 2.0  # the issue's: a stored harsh brake shows in the live feed within 2 s of its row's write
VIEWPORTS = ((1280, 800), (1024, 768))  # a laptop and a tablet
README_PAGES = ("fleet", "drivers", "event", "trip", "admin")  # copied for docs/images/dashboard-<page>.png
LOADING = ("…", "...")  # every page says "Reading …" until its data is in


def off_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `work` in a thread of its own: Playwright's sync API keeps an event loop running in the test's thread,
    and the stack's helpers (accounts, the edge agent) use asyncio.run."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(work, *args, **kwargs).result()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str


@dataclass(frozen=True)
class Site:
    base: str  # the stack's API process, which serves the dashboard at /app/
    admin_token: str  # the demo admin's API token: what a program reading the API uses
    logins: dict[str, Login]  # by role

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=15)


@dataclass(frozen=True)
class Drive:
    scripted: ScriptedDrive
    vehicle_id: str
    driver_id: str


@dataclass(frozen=True)
class Fed:
    """What the live feed showed while the drive was sent: each harsh brake's key, when its `<li>` entered the DOM
    (the page's Date.now(), ms) and when its row was written (Cassandra's writetime, s), and the items' text."""

    brake_keys: list[str]
    seen_ms: dict[str, float]
    written_s: dict[str, float]
    texts: dict[str, str]
    not_reloaded: bool


@dataclass(frozen=True)
class Stored:
    settled_brake_key: str  # a harsh brake after the drive's stop: the job's mounting frame had settled by then
    trip_start_ms: int


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def site(stack: StackConfig) -> Site:
    """The demo's admin, and a manager and a viewer made through the API (POST /v1/users) with known passwords."""
    admin = off_thread(ensure_demo_admin, stack)
    logins = {"admin": Login(admin.username, load_or_create(admin.password_file, admin.username).password, "admin")}
    base = Api(stack).url
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin.token}"}, timeout=15) as api:
        for role in ("manager", "viewer"):
            login = Login(f"dash-{role}-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(18), role)
            made = api.post("/v1/users", json={"username": login.username, "role": role, "password": login.password})
            assert made.status_code == 201, made.text
            logins[role] = login
    return Site(base, admin.token, logins)


@pytest.fixture(scope="module")
def drive(stack: StackConfig, operator_client: Any, site: Site, tmp_path_factory: pytest.TempPathFactory) -> Drive:
    """The scripted drive recorded (not sent yet), its vehicle registered with a label, a driver the admin manages
    assigned to it from before the drive."""
    edge = provision_vehicle(operator_client, stack, unique_vehicle("dash"), tmp_path_factory.mktemp("dash"))
    scripted = off_thread(record_scripted_drive, edge, seed=18)
    vid = edge.vehicle_id
    driver = f"drv-{vid}"[:64]
    with site.api() as api:
        assert api.post("/v1/vehicles", json={"vehicle_id": vid, "label": "Dashboard van"}).status_code in (201, 409)
        made = api.post(
            "/v1/drivers",
            json={"driver_id": driver, "name": "Dana Dashboard", "manager": site.logins["admin"].username},
        )
        assert made.status_code == 201, made.text
        taken = datetime.fromtimestamp(scripted.start_wall_s - 60, UTC).isoformat()
        assigned = api.post("/v1/assignments", json={"vehicle_id": vid, "driver_id": driver, "from": taken})
        assert assigned.status_code == 201, assigned.text
    return Drive(scripted, vid, driver)


def log_in(
    browser: Any, site: Site, role: str, viewport: tuple[int, int] = VIEWPORTS[0], *, by_keyboard: bool = False
) -> Any:
    """A page of a new browser context (its own cookies), logged in as `role` through the login form (by the
    keyboard alone: the form focuses its first field, Tab moves on, Enter sends)."""
    login = site.logins[role]
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    page.goto(f"{site.base}/app/", timeout=15_000)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=15_000)
    if by_keyboard:
        page.keyboard.type(login.username)
        page.keyboard.press("Tab")
        page.keyboard.type(login.password)
        page.keyboard.press("Enter")
    else:
        page.get_by_label("Username").fill(login.username)
        page.get_by_label("Password").fill(login.password)
        page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).to_have_text(f"{login.username} ({role})", timeout=15_000)
    expect(page.get_by_role("heading", name="Fleet now", exact=True)).to_be_visible()
    return page


# Stamps the moment each new feed item enters the DOM (the page's clock: the same machine's as Cassandra's), and
# sets a marker a reload would wipe.
OBSERVE_FEED = """() => {
    window.notReloaded = true;
    window.seenAtMs = {};
    new MutationObserver((changes) => {
        for (const change of changes)
            for (const node of change.addedNodes)
                if (node.dataset && node.dataset.key) window.seenAtMs[node.dataset.key] = Date.now();
    }).observe(document.getElementById("live-feed"), { childList: true });
}"""


@pytest.fixture(scope="module")
def fed(browser: Any, site: Site, drive: Drive, ingest_job: str, cql: Any) -> Fed:
    """A viewer's Fleet now page, connected to the live feed, watches while the drive is sent through the stack."""
    page = log_in(browser, site, "viewer")
    expect(page.get_by_text("Connected: new events appear")).to_be_visible(timeout=15_000)
    page.evaluate(OBSERVE_FEED)
    assert off_thread(send_outbox, drive.scripted.config, timeout_s=120) == 0
    brakes = sum(1 for kind, _ in drive.scripted.expected_events if kind == "harsh_brake")
    ours = f'#live-feed li[data-key^="{drive.vehicle_id}/"][data-key$="/harsh_brake"]'
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => document.querySelectorAll({ours!r}).length >= {brakes}", timeout=90_000)
    except PlaywrightTimeout:  # say what the feed did show, and its state
        shown = page.locator("#live-feed li").evaluate_all("(items) => items.map((li) => li.dataset.key)")
        state = page.locator("#live-feed").locator("xpath=..").locator("p.status").inner_text()
        pytest.fail(f"{brakes} harsh brakes of {drive.vehicle_id} not in the feed within 90 s ({state!r}): {shown}")
    seen_ms: dict[str, float] = page.evaluate("() => window.seenAtMs")
    texts = {item.get_attribute("data-key"): item.inner_text() for item in page.locator(ours).all()}
    not_reloaded = page.evaluate("() => window.notReloaded === true")
    page.context.close()
    keys = sorted(texts, key=lambda key: int(key.split("/")[1]))
    written_s = {}
    for key in keys:
        vehicle_id, start_ms, kind = key.split("/")
        written_s[key] = written_at_s(
            cql, {"key": key, "vehicle_id": vehicle_id, "start_ms": int(start_ms), "kind": kind}
        )
    return Fed(keys, {k: seen_ms[k] for k in keys}, written_s, texts, not_reloaded)


@pytest.fixture(scope="module")
def stored(site: Site, drive: Drive, fed: Fed) -> Stored:
    """The drive as the API reads it once the job has closed its trip."""
    with site.api() as api:
        trips = eventually(
            lambda: api.get(f"/v1/vehicles/{drive.vehicle_id}/trips").json(),
            lambda found: len(found) >= 1,
            timeout_s=45,
        )
    assert len(trips) == 1, trips
    return Stored(settled_brake_key=fed.brake_keys[1], trip_start_ms=trips[0]["start_ms"])


def test_each_role_logs_in_and_a_viewer_sees_no_admin_link_and_its_forged_requests_are_refused(
    browser: Any, site: Site
) -> None:
    navigation = {
        "admin": ["Fleet now", "Drivers", "Review queue", "Admin"],
        "manager": ["Fleet now", "Drivers", "Review queue"],
        "viewer": ["Fleet now", "Drivers"],
    }
    for role, links in navigation.items():
        page = log_in(browser, site, role, by_keyboard=role == "viewer")
        assert page.locator("#nav a").all_inner_texts() == links
        if role != "viewer":
            page.context.close()
    # The viewer's own page forges what the navigation does not offer: an admin's change (with the session's CSRF
    # token, so only the role refuses it), and a change the viewer may make but without the CSRF token.
    forged = page.evaluate(
        """async (password) => {
            const json = { "Content-Type": "application/json" };
            const me = await (await fetch("/v1/auth/me")).json();
            const asAdmin = await fetch("/v1/users", { method: "POST",
                headers: { ...json, "X-CSRF-Token": me.csrf_token },
                body: JSON.stringify({ username: "forged-admin", role: "admin", password }) });
            const noCsrf = await fetch("/v1/auth/tokens", { method: "POST", headers: json,
                body: JSON.stringify({ name: "forged without the CSRF token" }) });
            return { asAdmin: [asAdmin.status, (await asAdmin.json()).detail],
                     noCsrf: [noCsrf.status, (await noCsrf.json()).detail] };
        }""",
        secrets.token_urlsafe(18),
    )
    viewer = site.logins["viewer"].username
    assert forged["asAdmin"] == [403, f"this needs the admin role; {viewer} is a viewer"], forged
    assert forged["noCsrf"][0] == 403 and "CSRF token" in forged["noCsrf"][1], forged
    with site.api() as api:
        assert "forged-admin" not in [user["username"] for user in api.get("/v1/users").json()]
        assert api.get(f"/v1/users/{viewer}/tokens").json() == []
    page.goto(f"{site.base}/app/#/admin")  # typed or shared: the page says why instead of showing refusals
    expect(page.get_by_role("alert")).to_contain_text("you are logged in as a viewer")
    page.context.close()


def test_the_drives_harsh_brakes_appear_in_the_live_feed_within_2_s_of_their_write_without_a_reload(
    fed: Fed, drive: Drive
) -> None:
    expected = sorted(t for kind, t in drive.scripted.expected_events if kind == "harsh_brake")
    assert len(fed.brake_keys) == len(expected), fed.texts
    latencies_s = {key: fed.seen_ms[key] / 1000 - fed.written_s[key] for key in fed.brake_keys}
    print(f"\ndashboard live feed: row written -> <li> in the DOM, s: {[round(s, 3) for s in latencies_s.values()]}")
    assert all(0 <= s < FEED_TARGET_S for s in latencies_s.values()), latencies_s
    assert fed.not_reloaded, "the page reloaded while the feed updated"
    for text in fed.texts.values():
        assert "harsh brake" in text and drive.vehicle_id in text and re.search(r"peak \d+\.\d\d g", text), text


def test_the_event_page_of_a_stored_harsh_brake_draws_its_trace(
    browser: Any, site: Site, drive: Drive, stored: Stored
) -> None:
    page = log_in(browser, site, "viewer")
    page.goto(f"{site.base}/app/#/events/{stored.settled_brake_key}")
    expect(page.get_by_role("heading", name=f"Harsh brake on {drive.vehicle_id}")).to_be_visible(timeout=15_000)
    expect(page.locator("#trace-chart canvas")).to_be_visible(timeout=15_000)
    facts = page.locator("dl.facts").inner_text()
    assert re.search(r"Peak\s+0\.\d\d g", facts) and re.search(r"Threshold\s+0\.35 g", facts), facts
    colour = page.evaluate("async () => (await import('/app/js/trace_chart.js')).TRACE_COLOURS.longitudinal")
    drawn = canvas_pixels(page, "#trace-chart canvas", colour)
    print(f"\nevent page chart: {drawn}")
    assert drawn["series"] > 300, drawn  # the longitudinal line drawn, not just a canvas
    assert drawn["distinct"] > 3, drawn
    page.context.close()


def same_value(cell: str, value: Any) -> bool:
    """A CSV cell read back as the JSON value it stands for."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int | float):
        return float(cell) == pytest.approx(value)
    if isinstance(value, dict | list):
        return bool(json.loads(cell) == value)
    return cell == str(value)


def test_the_fleet_tables_csv_download_equals_the_apis_json(
    browser: Any, site: Site, drive: Drive, stored: Stored, tmp_path: Path
) -> None:
    page = log_in(browser, site, "manager")
    link = page.locator('a[href="/v1/fleet?format=csv"]')
    saved = tmp_path / "fleet.csv"
    with site.api() as api:
        for _ in range(3):  # the snapshot is refreshed every 5 s: a JSON before and after the download, the same one
            before = api.get("/v1/fleet").json()
            with page.expect_download(timeout=15_000) as downloading:
                link.click()
            downloading.value.save_as(saved)
            fleet = api.get("/v1/fleet").json()
            if fleet["as_of_ms"] == before["as_of_ms"]:
                break
    page.context.close()
    assert fleet["as_of_ms"] == before["as_of_ms"], "the snapshot changed during each of 3 downloads"
    with saved.open(newline="") as file:
        reader = csv.DictReader(file)
        columns, rows = reader.fieldnames, list(reader)
    vehicles = fleet["vehicles"]
    assert drive.vehicle_id in [v["vehicle_id"] for v in vehicles]
    assert columns == list(vehicles[0]), (columns, list(vehicles[0]))
    assert [row["vehicle_id"] for row in rows] == [v["vehicle_id"] for v in vehicles]
    for row, vehicle in zip(rows, vehicles, strict=True):
        differ = {name: (row[name], value) for name, value in vehicle.items() if not same_value(row[name], value)}
        assert not differ, (vehicle["vehicle_id"], differ)


def declared_pages() -> set[str]:
    """The pages app.js declares in PAGES (`["fleet", { title: ...`)."""
    declared = APP_JS.read_text().split("const PAGES = new Map([", 1)[1].split("]);", 1)[0]
    return set(re.findall(r'\[\s*"(\w+)",\s*\{\s*title:', declared))


def walk(site: Site, drive: Drive, stored: Stored) -> list[tuple[str, str]]:
    """Every page, by the name its screenshot takes, and its URL's hash with the drive's data; the admin page's
    sections (admin.js's SECTIONS) each with something to show."""
    return [
        ("fleet", "#/fleet"),
        ("drivers", "#/drivers"),
        ("driver", f"#/drivers/{drive.driver_id}"),
        ("vehicle", f"#/vehicles/{drive.vehicle_id}"),
        ("trip", f"#/trips/{drive.vehicle_id}/{stored.trip_start_ms}"),
        ("event", f"#/events/{stored.settled_brake_key}"),
        ("reviews", "#/reviews"),
        ("admin", "#/admin"),
        ("admin-users", f"#/admin/users/{site.logins['viewer'].username}"),
        ("admin-drivers", "#/admin/drivers"),
        ("admin-assignments", f"#/admin/assignments/vehicle/{drive.vehicle_id}"),
        ("admin-vehicles", "#/admin/vehicles"),
        ("admin-webhooks", "#/admin/webhooks"),
    ]


def open_page(page: Any, base: str, name: str, hash_path: str) -> int:
    """Go to a page (a hash change: the shell stays) and wait until it no longer says it is reading; answers how
    many pixels wider than the window the page is (a wide table scrolls in its own box, never the page)."""
    page.goto(f"{base}/app/{hash_path}")
    page.wait_for_function(
        """(loading) => {
            const main = document.getElementById("main");
            return main.querySelector("h1") !== null && !loading.some((mark) => main.innerText.includes(mark));
        }""",
        arg=list(LOADING),
        timeout=20_000,
    )
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    if name == "event":
        expect(page.locator("#trace-chart canvas")).to_be_visible(timeout=15_000)
    alerts = [text for text in page.get_by_role("alert").all_inner_texts() if text.strip()]
    assert alerts == [], f"the {name} page ({hash_path}) shows an error: {alerts}"
    return int(page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def test_every_page_passes_axe_core_fits_a_laptop_and_a_tablet_window_and_is_saved_as_screenshots(
    browser: Any, site: Site, stack: StackConfig, drive: Drive, stored: Stored
) -> None:
    pages = walk(site, drive, stored)
    walked = {hash_path.split("/")[1] for _, hash_path in pages}
    assert walked == declared_pages(), "a page app.js declares has no URL in walk() (or walk() has a stale one)"
    shots = stack.data_dir / "artifacts" / "dashboard"
    readme = shots / "readme"
    readme.mkdir(parents=True, exist_ok=True)
    violations: dict[str, list[str]] = {}
    too_wide_px: dict[str, int] = {}
    script_errors: list[str] = []
    refused: list[str] = []  # the page's CSP refusing something of ours
    for width, height in VIEWPORTS:
        page = log_in(browser, site, "admin", (width, height))
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.route(f"**{AXE_URL}", lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
        for name, hash_path in pages:
            if (overflow_px := open_page(page, site.base, name, hash_path)) > 0:
                too_wide_px[f"{name}-{width}"] = overflow_px
            if width == VIEWPORTS[0][0]:
                violations[name] = serious_violations(page, axe_url=AXE_URL)
            shot = shots / f"{name}-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            if width == VIEWPORTS[0][0] and name in README_PAGES:
                shutil.copyfile(shot, readme / f"dashboard-{name}.png")
        page.context.close()
    assert script_errors == [] and refused == [], (script_errors, refused)
    print(f"\ndashboard screenshots: {shots} (README's: {readme})")
    assert {name: found for name, found in violations.items() if found} == {}
    assert too_wide_px == {}, f"pages wider than the window (px): {too_wide_px}"
