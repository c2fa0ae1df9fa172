"""The admin pages (#/admin/<section>) in a real browser against the real routes: users and tokens over the app's
accounts in memory; drivers, assignments, vehicles and webhooks over tests/unit/service_memory_db.py's MemoryDb in
the app's context (the real route code runs; the fleet list is the in-process snapshot). Each section by keyboard,
a refusal shown in the API's words, a viewer and a manager kept out (the page, and the API to a forged request), and
axe-core on every section."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleetsense.cloud import tables as t
from fleetsense.service.roles import Role
from fleetsense.service.routes_webhooks import AttemptOut

from tests.browser.inprocess import PASSWORD, LiveContext, app_with, serving, snapshot_of
from tests.browser.page_checks import serious_violations
from tests.unit.service_memory_db import BY_NAME, MemoryDb, _stored

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
expect = sync_api.expect
SECTIONS = {
    "users": "Users and tokens",
    "drivers": "Drivers",
    "assignments": "Assignments",
    "vehicles": "Vehicles and classes",
    "webhooks": "Webhooks",
}
_DELETE = re.compile(r"DELETE FROM \{ks\}\.(?P<table>\w+) WHERE (?P<where>.+)$")


class AdminDb(MemoryDb):
    """MemoryDb, plus the one-row DELETE a webhook's removal runs (the memory db runs INSERTs only)."""

    async def execute(self, cql: str, params: Sequence[Any] = (), *, consistency: str = "LOCAL_QUORUM") -> list[Any]:
        delete = _DELETE.match(cql)
        if delete is None:
            return await super().execute(cql, params, consistency=consistency)
        table = BY_NAME[delete["table"]]
        columns = [w.split(" = ")[0] for w in delete["where"].split(" AND ")]
        wanted = {c: _stored(table, c, v) for c, v in zip(columns, params, strict=True)}
        rows = self.tables.get(table.name, {})
        for key in [k for k, r in rows.items() if all(r[c] == v for c, v in wanted.items())]:
            del rows[key]
        return []


@contextmanager
def admin_app(users: dict[str, Role] | None = None, vehicles: int = 3) -> Iterator[tuple[str, AdminDb]]:
    db = AdminDb()
    context = LiveContext()
    context.db = db  # type: ignore[assignment]  # MemoryDb is service.db.Db's interface over dicts
    with serving(app_with(users or {"ada": Role.ADMIN}, snapshot_of(vehicles), context)) as base:
        yield base, db


def open_admin(browser: Any, base: str, section: str, *, username: str = "ada", axe: bool = False) -> Any:
    """A page logged in by keyboard, on #/admin/<section>, with every script error collected in page.errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=axe)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: page.errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/app/#/admin/{section}", timeout=10_000)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    return page


def tab_to(page: Any, locator: Any, *, most: int = 80) -> None:
    """Press Tab until `locator` has the focus: proof that the keyboard alone reaches it."""
    for _ in range(most):
        if locator.evaluate("(e) => e === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


def test_an_admin_adds_a_user_and_a_token_by_keyboard_and_the_token_works(browser: Any) -> None:
    with admin_app() as (base, _db):
        page = open_admin(browser, base, "users")
        expect(page.get_by_role("heading", name="Admin: Users and tokens")).to_be_visible(timeout=5_000)
        expect(page.locator("#users-table tbody tr")).to_have_count(1, timeout=5_000)
        tab_to(page, page.get_by_label("Username", exact=True))
        page.keyboard.type("otto")
        page.keyboard.press("Tab")  # the role: a select takes the keyboard's arrows
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Tab")  # the password: left empty, so one is generated
        page.keyboard.press("Enter")
        secret = page.get_by_role("region", name="The password of otto")
        expect(secret).to_contain_text("Shown this once", timeout=5_000)
        password = secret.locator("code").inner_text()
        expect(page.locator("#users-table tbody tr")).to_have_count(2)
        assert "manager" in page.locator("#users-table tbody tr", has_text="otto").locator("select").input_value()
        assert httpx.post(f"{base}/v1/auth/login", json={"username": "otto", "password": password}).is_success

        tab_to(page, page.get_by_role("link", name="Tokens of otto"))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Tokens of otto")).to_be_visible(timeout=5_000)
        expect(page.get_by_text("otto has no API tokens")).to_be_visible(timeout=5_000)
        tab_to(page, page.get_by_label("What the token is for"))
        page.keyboard.type("nightly export")
        page.keyboard.press("Enter")
        shown = page.get_by_role("region", name='The token "nightly export" of otto')
        expect(shown).to_contain_text("Authorization: Bearer", timeout=5_000)
        assert shown.evaluate("(e) => e === document.activeElement")  # focus moved to the secret: it is read out
        token = shown.locator("code.secret").inner_text()
        me = httpx.get(f"{base}/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["username"] == "otto" and me.json()["role"] == "manager"

        row = page.locator("#tokens-table tbody tr", has_text="nightly export")
        expect(row).to_contain_text("works")
        tab_to(page, row.get_by_role("button", name="Revoke the token nightly export"))
        page.keyboard.press("Enter")
        expect(row).to_contain_text("revoked", timeout=5_000)
        assert httpx.get(f"{base}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

        with page.expect_download() as download:  # the list's CSV: what the API answers, byte for byte
            page.get_by_role("link", name="Download as CSV").click()
        with as_admin(base) as client:
            assert Path(download.value.path()).read_bytes() == client.get("/v1/users/otto/tokens?format=csv").content
        assert page.errors == []
        page.close()


def test_a_refusal_is_shown_next_to_its_form_in_the_apis_own_words(browser: Any) -> None:
    with admin_app() as (base, _db):
        page = open_admin(browser, base, "users")
        form = page.locator("#add-user")
        form.get_by_label("Username", exact=True).fill("ada")  # taken: the admin's own name
        form.get_by_role("button", name="Add the user").click()
        alert = form.get_by_role("alert")
        expect(alert).to_contain_text("Refused:", timeout=5_000)
        login = httpx.post(f"{base}/v1/auth/login", json={"username": "ada", "password": PASSWORD})
        again = httpx.post(
            f"{base}/v1/users",
            json={"username": "ada", "role": "viewer"},
            cookies=login.cookies,
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert again.status_code == 409
        assert alert.inner_text() == f"Refused: {again.json()['detail']}"

        # An admin demoting themselves: refused by the API, said in the row's alert.
        row = page.locator("#users-table tbody tr", has_text="ada")
        row.get_by_label("Role of ada", exact=True).select_option("viewer")
        row.get_by_role("button", name="Set role of ada").click()
        row_alert = page.locator(".admin-section > p.error[role=alert]")
        expect(row_alert).to_contain_text("an admin cannot disable or demote themselves", timeout=5_000)
        expect(row_alert).to_be_focused()  # where a keyboard user is taken, and what a screen reader reads
        page.close()


def test_assignments_are_made_corrected_and_an_overlap_is_refused_in_the_apis_words(browser: Any) -> None:
    with admin_app() as (base, _db):
        page = open_admin(browser, base, "drivers")
        expect(page.get_by_text("No drivers yet")).to_be_visible(timeout=5_000)
        add = page.locator("#add-driver")
        add.get_by_label("Driver id").fill("ann")
        add.get_by_label("Name").fill("Ann Smith")
        add.get_by_label("Manager (optional)").fill("ada")
        add.get_by_label("Manager (optional)").press("Enter")
        expect(page.locator("#drivers-admin-table tbody tr")).to_have_count(1, timeout=5_000)
        assert "ada" in page.locator("#drivers-admin-table tbody tr").inner_text()

        page.get_by_role("link", name="Assignments of ann").click()
        expect(page.get_by_text("Driver ann has no assignments")).to_be_visible(timeout=5_000)
        assign = page.locator("#assign")
        assert assign.get_by_label("Driver id").input_value() == "ann"
        assign.get_by_label("Vehicle id").fill("van-0001")
        assign.get_by_label("From").fill("2026-12-01T08:00")
        assign.get_by_label("To (optional)").fill("2026-12-01T16:00")
        assign.get_by_role("button", name="Assign").click()
        expect(page.locator("#assignments-table tbody tr")).to_have_count(1, timeout=5_000)

        assign.get_by_label("From").fill("2026-12-01T12:00")  # inside the first: the API refuses the overlap
        assign.get_by_label("To (optional)").fill("")
        assign.get_by_role("button", name="Assign").click()
        alert = assign.get_by_role("alert")
        expect(alert).to_contain_text("Refused:", timeout=5_000)
        said = alert.inner_text().removeprefix("Refused: ")
        login = httpx.post(f"{base}/v1/auth/login", json={"username": "ada", "password": PASSWORD})
        direct = httpx.post(
            f"{base}/v1/assignments",
            json={
                "vehicle_id": "van-0001",
                "driver_id": "ann",
                "from": page.evaluate("() => new Date('2026-12-01T12:00').toISOString()"),
            },
            cookies=login.cookies,
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert direct.status_code == 409 and said == direct.json()["detail"]

        # A correction: the shift ended at 15:00, not 16:00.
        page.locator("#assignments-table").get_by_role("button", name=re.compile("^Change ann on van-0001")).click()
        correct = page.locator("#correct-assignment")
        expect(correct).to_be_visible()
        correct.get_by_label("To", exact=True).fill("2026-12-01T15:00")
        correct.get_by_role("button", name="Save the correction").click()
        expect(page.get_by_role("status").filter(has_text="Corrected: ann on van-0001")).to_be_visible(timeout=5_000)
        to_ms = page.evaluate("() => new Date('2026-12-01T15:00').getTime()")
        stored = httpx.get(f"{base}/v1/drivers/ann/assignments", cookies=login.cookies).json()
        assert [a["to_ms"] for a in stored] == [to_ms]
        page.close()


def test_a_driver_is_changed_and_retired_and_the_vehicles_get_a_class(browser: Any) -> None:
    with admin_app() as (base, db):
        page = open_admin(browser, base, "drivers")
        add = page.locator("#add-driver")
        add.get_by_label("Driver id").fill("bob")
        add.get_by_label("Name").fill("Bob")
        add.get_by_role("button", name="Add the driver").click()
        page.get_by_role("link", name="Change Bob (bob)").click()
        edit = page.locator("#edit-driver")
        expect(edit).to_be_visible(timeout=5_000)
        edit.get_by_label("Name").fill("Robert")
        edit.get_by_label(re.compile("Active")).uncheck()
        edit.get_by_role("button", name="Save the changes").click()
        expect(edit.get_by_role("status")).to_have_text("Saved Robert (retired).", timeout=5_000)
        expect(page.locator("#drivers-admin-table tbody tr")).to_contain_text("retired")

        sections = page.get_by_role("navigation", name="Admin sections")
        page.locator("#main").focus()  # from the page's top, as the router leaves it: Tab reaches the section nav
        tab_to(page, sections.get_by_role("link", name="Vehicles and classes"), most=10)
        page.keyboard.press("Enter")
        expect(sections.get_by_role("link", name="Vehicles and classes")).to_have_attribute("aria-current", "page")
        expect(page.locator("#vehicles-admin-table tbody tr")).to_have_count(3, timeout=5_000)
        classes = page.locator("#vehicle-classes-table")
        expect(classes).to_contain_text("harsh brake")  # labels from GET /v1/event-kinds, not from the page
        assert "0.25 g" in classes.locator("tbody tr", has_text="truck").inner_text()
        form = page.locator("#set-vehicle-class")
        form.get_by_label("Vehicle id").fill("van-0002")
        form.get_by_label("Class").select_option("truck")
        form.get_by_role("button", name="Set the class").click()
        expect(form.get_by_role("status")).to_contain_text("van-0002 is a truck", timeout=5_000)
        assert [r["vehicle_class"] for r in db.all(t.VEHICLE_PROFILES)] == ["truck"]
        register = page.locator("#register-vehicle")
        register.get_by_label("Vehicle id").fill("bad id!")
        register.get_by_role("button", name="Register").click()
        expect(register.get_by_role("alert")).to_contain_text("Refused:", timeout=5_000)
        register.get_by_label("Vehicle id").fill("van-0009")
        register.get_by_label("Label (optional)").fill("KA-9")
        register.get_by_role("button", name="Register").click()
        expect(register.get_by_role("status")).to_have_text("Registered van-0009.", timeout=5_000)
        assert [(r["vehicle_id"], r["label"]) for r in db.all(t.FLEET_VEHICLES)] == [("van-0009", "KA-9")]
        assert page.errors == []
        page.close()


def test_a_webhook_is_added_with_its_secret_shown_once_changed_and_deleted(browser: Any) -> None:
    with admin_app() as (base, db):
        page = open_admin(browser, base, "webhooks")
        expect(page.get_by_text("No webhooks yet")).to_be_visible(timeout=5_000)
        add = page.locator("#add-webhook")
        add.get_by_label("URL").fill("http://169.254.169.254/latest")  # link-local: refused, in the API's words
        add.get_by_role("button", name="Add the webhook").click()
        expect(add.get_by_role("alert")).to_contain_text("reaches", timeout=5_000)
        add.get_by_label("URL").fill("https://93.184.216.34/hooks/fleet")
        add.get_by_label("harsh brake").check()
        add.get_by_role("button", name="Add the webhook").click()
        secret = page.get_by_role("region", name=re.compile("^The signing secret"))
        expect(secret).to_contain_text("X-Fleetsense-Signature", timeout=5_000)
        assert secret.locator("code.secret").inner_text() == db.all(t.WEBHOOKS)[0]["secret"]
        row = page.locator("#webhooks-table tbody tr")
        expect(row).to_contain_text("harsh brake")

        hook_id = db.all(t.WEBHOOKS)[0]["webhook_id"]
        now_ms = int(time.time() * 1000)
        failed = {"event_key": "van-0001/1/harsh_brake", "attempt": 2, "status_code": 502, "error": "HTTP 502"}
        today = datetime.now(UTC).date()
        db.put(
            t.WEBHOOK_DELIVERIES, webhook_id=hook_id, day_bucket=today, attempted_at=now_ms, duration_ms=1234, **failed
        )
        # A test delivery would really POST to that address: its answer is the route's model, built here.
        attempt = AttemptOut(event_key="test/1/test", attempt=1, attempted_at_ms=now_ms, status_code=204, error=None,
                             duration_ms=87, delivered=True)  # fmt: skip
        page.route("**/v1/webhooks/*/test", lambda route: route.fulfill(json=attempt.model_dump()))

        row.get_by_role("link").click()
        expect(page.get_by_role("heading", name="Webhook to https://93.184.216.34/hooks/fleet")).to_be_visible()
        log = page.locator("#deliveries-table tbody tr")
        expect(log).to_have_count(1, timeout=5_000)
        assert all(text in log.inner_text() for text in ("van-0001/1/harsh_brake", "HTTP 502", "1,234 ms"))
        assert log.locator("td").last.inner_text() == "no"  # delivered
        page.get_by_label("Day (UTC)").fill("2026-01-02")
        page.get_by_label("Day (UTC)").press("Enter")
        expect(page.get_by_text("No delivery attempts that day")).to_be_visible(timeout=5_000)
        test = page.locator("#test-webhook")
        test.get_by_role("button", name="Send a test event").click()
        expect(test.get_by_role("status")).to_have_text("Delivered: HTTP 204 in 87 ms.", timeout=5_000)
        change = page.locator("#change-webhook")
        change.get_by_label(re.compile("Enabled")).uncheck()
        change.get_by_role("button", name="Save the changes").click()
        expect(page.get_by_role("status").filter(has_text="Saved the webhook's changes")).to_be_visible(timeout=5_000)
        expect(page.locator("dl.facts")).to_contain_text("disabled")
        assert db.all(t.WEBHOOKS)[0]["disabled_at"] is not None

        page.locator("#rotate-secret").get_by_role("button").click()
        rotated = page.get_by_role("region", name="The new signing secret")
        expect(rotated).to_be_visible(timeout=5_000)
        assert rotated.locator("code.secret").inner_text() == db.all(t.WEBHOOKS)[0]["secret"]

        remove = page.locator("#delete-webhook")
        remove.get_by_role("button", name="Delete the webhook").click()  # the "Yes" box is required first
        assert db.all(t.WEBHOOKS) != []
        remove.get_by_label(re.compile("Yes: stop")).check()
        remove.get_by_role("button", name="Delete the webhook").click()
        expect(page.get_by_text("No webhooks yet")).to_be_visible(timeout=5_000)
        assert db.all(t.WEBHOOKS) == []
        assert page.errors == []
        page.close()


def test_a_list_the_api_cannot_read_says_so_and_reads_again_on_request(browser: Any) -> None:
    with admin_app() as (base, _db):
        page = browser.new_page()
        failing = {"on": True}

        def drivers(route: Any) -> None:
            if failing["on"] and route.request.method == "GET":
                route.fulfill(status=503, json={"detail": "Cassandra is not reachable (what to do: retry)"})
            else:
                route.continue_()

        page.route("**/v1/drivers", drivers)
        page.goto(f"{base}/app/#/admin/drivers", timeout=10_000)
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        alert = page.get_by_role("alert").filter(has_text="could not be read")
        expect(alert).to_contain_text("Cassandra is not reachable", timeout=5_000)
        failing["on"] = False
        page.get_by_role("button", name="Try again").click()
        expect(page.get_by_text("No drivers yet")).to_be_visible(timeout=5_000)
        page.close()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MANAGER])
def test_a_viewer_or_manager_cannot_open_admin_and_a_forged_request_is_refused(browser: Any, role: Role) -> None:
    with admin_app({"ivy": role}) as (base, _db):
        page = open_admin(browser, base, "users", username="ivy")
        expect(page.get_by_role("alert")).to_contain_text(f"you are logged in as a {role.label}", timeout=5_000)
        assert page.get_by_role("link", name="Admin").count() == 0
        forged = page.evaluate(
            """async () => {
                const me = await (await fetch('/v1/auth/me')).json();
                const ask = (headers) => fetch('/v1/users', { method: 'POST', credentials: 'same-origin',
                    headers: { 'Content-Type': 'application/json', ...headers },
                    body: JSON.stringify({ username: 'mallory', role: 'admin' }) });
                const withToken = await ask({ 'X-CSRF-Token': me.csrf_token });
                const without = await ask({});
                return [withToken.status, (await withToken.json()).detail, without.status];
            }"""
        )
        assert forged[0] == 403 and forged[2] == 403, forged
        assert "admin" in forged[1]
        page.close()


def as_admin(base: str) -> httpx.Client:
    """An HTTP client logged in as the admin, with the session's CSRF token on every request."""
    login = httpx.post(f"{base}/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    return httpx.Client(base_url=base, cookies=login.cookies, headers={"X-CSRF-Token": login.json()["csrf_token"]})


def test_every_admin_section_has_no_serious_accessibility_violations(browser: Any) -> None:
    with admin_app() as (base, db), as_admin(base) as client:
        db.put(t.WEBHOOKS, fleet_id="default", webhook_id="wh_1", url="https://93.184.216.34/h", kinds={"bump"},
               secret="whsec_x", created_by="ada", created_at=0, disabled_at=None)  # fmt: skip
        assert client.post("/v1/drivers", json={"driver_id": "ann", "name": "Ann"}).is_success
        shift = {"vehicle_id": "van-0001", "driver_id": "ann", "from": "2026-12-01T08:00:00Z"}
        assert client.post("/v1/assignments", json=shift).is_success
        page = open_admin(browser, base, "users", axe=True)
        found: dict[str, list[str]] = {}
        views = {**SECTIONS, "users/ada": "Users and tokens", "drivers/ann": "Drivers",
                 "assignments/vehicle/van-0001": "Assignments", "webhooks/wh_1": "Webhooks"}  # fmt: skip
        for view, title in views.items():
            page.goto(f"{base}/app/#/admin/{view}")
            expect(page.get_by_role("heading", name=f"Admin: {title}")).to_be_visible(timeout=5_000)
            expect(page.locator(".admin-section").get_by_text(re.compile("^Reading"))).to_have_count(0, timeout=5_000)
            if view.startswith("assignments/"):  # the correction panel open: its three forms checked too
                page.get_by_role("button", name=re.compile("^Change ann")).click()
            found[view] = serious_violations(page, within="#main")  # the page's own part: the shell is test_smoke's
            if view in SECTIONS:  # a tablet's screen too (the page reflows; nothing is cut off)
                page.set_viewport_size({"width": 1024, "height": 768})
                width = page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 1024, f"{view} scrolls sideways at 1024 px ({width} px)"
                page.set_viewport_size({"width": 1280, "height": 800})
        assert found == {view: [] for view in found}
        assert page.errors == []
        page.close()
