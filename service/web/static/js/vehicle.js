// A vehicle (#/vehicles/<id>): the vehicle now (GET /v1/vehicles/{id}), its scorecard per UTC day for the last week
// (GET .../scorecard?period=day&series=7), its trips of the last 7 days (GET .../trips) each opening its trip page,
// and its events of the last 7 days (GET .../events) each opening its event page. The four are read at once and each
// section says for itself what failed, so a scorecard the API cannot read does not hide the trips.

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { EVENT_COLUMNS } from "./event_columns.js";

const WEEK_MS = 7 * 86400000;
const SCORE_DAYS = 7;
const EVENTS_SHOWN = 50; // the newest; the CSV link holds the whole week
const SESSION_ENDED = "Your session has ended: log in again.";

export function vehiclePath(vehicleId) {
  return `/v1/vehicles/${encodeURIComponent(vehicleId)}`;
}

export function tripHref(vehicleId, startMs) {
  return `#/trips/${encodeURIComponent(vehicleId)}/${startMs}`;
}

function driverLink(driverId) {
  return driverId === null ? "nobody assigned" : h("a", { href: `#/drivers/${encodeURIComponent(driverId)}` }, driverId);
}

function at(ms) {
  return h("time", { datetime: f.isoAttr(ms) }, f.time(ms));
}

function classText(klass) {
  if (klass === null) return "could not be read (reload to try again)";
  return klass.chosen ? klass.vehicle_class : `${klass.vehicle_class} (the default: nobody set one)`;
}

function facts(v, klass) {
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  const status = v.online === null ? "no status yet"
    : h("span", { class: v.online ? "online" : "offline" }, v.online ? "online" : `offline (${v.status_reason ?? "unknown"})`);
  return h(
    "dl",
    { class: "facts", id: "vehicle-facts" },
    row("Vehicle", v.label ? `${v.label} (${v.vehicle_id})` : v.vehicle_id),
    row("Class", classText(klass)),
    row("Status", status),
    row("Driver now", driverLink(v.driver_id)),
    row("Current trip", v.trip_open
      ? h("a", { href: tripHref(v.vehicle_id, v.trip_start_ms) }, "since ", f.time(v.trip_start_ms),
        ` (${f.duration(v.trip_duration_s)} so far)`)
      : "none under way"),
    row("Last seen", v.last_seen_ms === null ? "no data yet" : at(v.last_seen_ms)),
    row("Today (UTC)", `${f.score(v.score_today)} · ${f.duration(v.driving_s_today)} driving · ${f.eventCounts(v.events_today)}`),
  );
}

function scorecardTable(vehicleId, card) {
  const url = `${vehiclePath(vehicleId)}/scorecard?period=day&series=${SCORE_DAYS}`;
  return dataTable({
    id: "vehicle-scorecard",
    caption: `Score per UTC day, the last ${SCORE_DAYS} days, newest first (dismissed events left out)`,
    columns: [
      { title: "Day", row: true, cell: (d) => f.utcDay(d.first_day) },
      { title: "Score", numeric: true, cell: (d) => (d.driving_s > 0 ? f.score(d.score) : "no driving") },
      { title: "Driving", numeric: true, cell: (d) => f.duration(d.driving_s) },
      { title: "Harsh events", numeric: true, cell: (d) => f.count(d.harsh_events, "event") },
      { title: "Harsh events per hour", numeric: true, cell: (d) => f.perHour(d.events_per_hour) },
      { title: "Events by kind", cell: (d) => f.eventCounts(d.event_counts) },
    ],
    rows: [...card.periods].reverse(),
    empty: "No scorecard for these days.",
    csv: url,
    file: `${vehicleId}-scorecard.csv`,
  });
}

function tripsTable(vehicleId, trips, span) {
  const full = trips.length >= 100 ? " (the newest 100: the CSV holds the same)" : "";
  return dataTable({
    id: "vehicle-trips",
    caption: `${f.count(trips.length, "trip")} that started in the last 7 days, newest first${full}`,
    columns: [
      { title: "Started", row: true, cell: (t) => h("a", { href: tripHref(vehicleId, t.start_ms) }, f.time(t.start_ms)) },
      { title: "Ended", cell: (t) => (t.open ? "still going" : at(t.end_ms)) },
      { title: "Duration", numeric: true, cell: (t) => f.duration(t.duration_s) },
      { title: "Events", numeric: true, cell: (t) => f.count(f.countTotal(t.event_counts), "event") },
      { title: "By kind", cell: (t) => f.eventCounts(t.event_counts) },
      { title: "Trip score", numeric: true, cell: (t) => f.score(t.score) },
    ],
    rows: trips,
    empty: "No trips in the last 7 days. A trip is recorded once the vehicle moves; older trips are in the API " +
      `(GET ${vehiclePath(vehicleId)}/trips?from_ms=...).`,
    csv: `${vehiclePath(vehicleId)}/trips?from_ms=${span.from}&to_ms=${span.to}`,
    file: `${vehicleId}-trips.csv`,
  });
}

function eventsTable(vehicleId, page, span) {
  const more = page.next_cursor !== null ? ` (the newest ${EVENTS_SHOWN}: the CSV holds all of them)` : "";
  return dataTable({
    id: "vehicle-events",
    caption: `${f.count(page.items.length, "event")} in the last 7 days, newest first${more}`,
    columns: [
      { title: "Started", cell: (e) => at(e.start_ms) },
      EVENT_COLUMNS.kind,
      { title: "Driver", cell: (e) => driverLink(e.driver_id) },
      EVENT_COLUMNS.peak,
      EVENT_COLUMNS.duration,
      EVENT_COLUMNS.review,
    ],
    rows: page.items,
    empty: "No events in the last 7 days: nothing harsh, no bumps, no stops recorded.",
    csv: `${vehiclePath(vehicleId)}/events?from=${span.from}&to=${span.to}`,
    file: `${vehicleId}-events.csv`,
  });
}

function section(id, title, status) {
  const body = h("div", {}, h("p", { class: "status" }, status));
  return { body, element: h("section", { "aria-labelledby": id }, h("h2", { id }, title), body) };
}

export function renderVehicle(main, { params, onUnauthorized }) {
  const vehicleId = params;
  const heading = h("h1", {}, `Vehicle ${vehicleId}`);
  const about = h("div", {}, h("p", { class: "status" }, "Reading the vehicle…"));
  const score = section("scorecard-h", "Scorecard", "Reading its scorecard…");
  const trips = section("trips-h", "Trips", "Reading its trips…");
  const events = section("events-h", "Events", "Reading its events…");
  show(main, heading, about, score.element, trips.element, events.element);
  let stopped = false;
  let ended = false;

  // Each part fills its own box; a 401 ends the session once, any other failure says what failed where it would be.
  function fill(box, what, read, draw) {
    return read.then((answer) => stopped || show(box, draw(answer))).catch((error) => {
      if (stopped || ended) return;
      if (error instanceof ApiError && error.status === 401) {
        ended = true;
        return onUnauthorized(SESSION_ENDED);
      }
      show(box, h("p", { class: "error", role: "alert" }, `${what} could not be read: ${error.message}. Reload the page to try again.`));
    });
  }

  const span = { to: Date.now() + 1, from: Date.now() + 1 - WEEK_MS }; // one week for the page and its CSV links
  const base = vehiclePath(vehicleId);
  // The class sets the harsh-event thresholds; a class that cannot be read leaves the rest of the vehicle shown.
  Promise.all([api(base), api(`${base}/class`).catch(() => null)]).then(([v, klass]) => {
    if (stopped) return;
    heading.textContent = `Vehicle ${v.label ?? v.vehicle_id}`;
    document.title = `${heading.textContent} · fleetsense`;
    show(about, facts(v, klass));
  }).catch((error) => {
    if (stopped || ended) return;
    if (error instanceof ApiError && error.status === 401) {
      ended = true;
      return onUnauthorized(SESSION_ENDED);
    }
    const what = error instanceof ApiError && error.status === 404
      ? `${error.message}. Open a vehicle from the Fleet now page.`
      : `The vehicle could not be read: ${error.message}. Reload the page to try again.`;
    show(about, h("p", { class: "error", role: "alert" }, what));
  });
  fill(score.body, "The scorecard", api(`${base}/scorecard?period=day&series=${SCORE_DAYS}`),
    (card) => scorecardTable(vehicleId, card));
  fill(trips.body, "The trips", api(`${base}/trips?from_ms=${span.from}&to_ms=${span.to}`),
    (rows) => tripsTable(vehicleId, rows, span));
  fill(events.body, "The events", api(`${base}/events?from=${span.from}&to=${span.to}&limit=${EVENTS_SHOWN}`),
    (page) => eventsTable(vehicleId, page, span));
  return () => {
    stopped = true;
  };
}
