// A driver's scorecard's lists for the chosen period: their events (GET /v1/drivers/{id}/events), their assignments
// (GET /v1/drivers/{id}/assignments: which vehicle, when) and their trips. The API has no per-driver trips list: a
// trip here is a trip of an assigned vehicle (GET /v1/vehicles/{id}/trips) that started while the driver held it.

import { api } from "./api.js";
import { h } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { EVENT_COLUMNS } from "./event_columns.js";

const EVENTS_SHOWN = 100;
const TRIPS_PER_ASSIGNMENT = 100;
const MOST_ASSIGNMENTS = 20; // one trips request each: a driver swapping vehicles hourly would need a per-driver list

const timeCell = (ms) => h("time", { datetime: f.isoAttr(ms) }, f.time(ms));
const vehicleLink = (id) => h("a", { href: `#/vehicles/${encodeURIComponent(id)}` }, id);
const total = (counts) => Object.values(counts).reduce((sum, n) => sum + n, 0);
const tripHref = (t) => `#/trips/${encodeURIComponent(t.vehicle_id)}/${t.start_ms}`;

export async function eventsTable(driverId, span) {
  const query = `from=${span.fromMs}&to=${span.toMs}`;
  const path = `/v1/drivers/${encodeURIComponent(driverId)}/events?${query}&limit=${EVENTS_SHOWN}`;
  const page = await api(path);
  return dataTable({
    id: "driver-events",
    caption: page.next_cursor
      ? `The newest ${f.count(page.items.length, "event")} of the period (the CSV holds them all)`
      : `${f.count(page.items.length, "event")} in the period, newest first`,
    columns: [
      { title: "Started", cell: (e) => timeCell(e.start_ms) },
      EVENT_COLUMNS.kind,
      { title: "Vehicle", cell: (e) => vehicleLink(e.vehicle_id) },
      EVENT_COLUMNS.peak,
      EVENT_COLUMNS.duration,
      EVENT_COLUMNS.review,
    ],
    rows: page.items,
    empty: "No events in this period: a good sign, or no driving (the scorecard above says which).",
    csv: `/v1/drivers/${encodeURIComponent(driverId)}/events?${query}`,
    file: `${driverId}-events.csv`,
  });
}

export async function assignmentsOf(driverId) {
  return api(`/v1/drivers/${encodeURIComponent(driverId)}/assignments`);
}

export function assignmentsTable(driverId, assignments) {
  const newestFirst = [...assignments].sort((a, b) => b.from_ms - a.from_ms);
  return dataTable({
    id: "driver-assignments",
    caption: `${f.count(assignments.length, "assignment")}, newest first: the vehicles the driver held, and when`,
    columns: [
      { title: "Vehicle", row: true, cell: (a) => vehicleLink(a.vehicle_id) },
      { title: "From", cell: (a) => timeCell(a.from_ms) },
      { title: "To", cell: (a) => (a.to_ms === null ? "still assigned" : timeCell(a.to_ms)) },
      { title: "Length", numeric: true, cell: (a) => f.duration(((a.to_ms ?? Date.now()) - a.from_ms) / 1000) },
      { title: "Set by", cell: (a) => `${a.set_by} (${a.source})` },
    ],
    rows: newestFirst,
    empty: "This driver has never been assigned a vehicle: a manager assigns one on the Admin page " +
      "(or POST /v1/assignments), or the driver badges in at the vehicle's reader.",
    csv: `/v1/drivers/${encodeURIComponent(driverId)}/assignments`,
    file: `${driverId}-assignments.csv`,
  });
}

// The assignments' parts inside [fromMs, toMs): what each trips request asks for.
export function heldSpans(assignments, span) {
  return assignments
    .map((a) => ({ vehicleId: a.vehicle_id, fromMs: Math.max(a.from_ms, span.fromMs),
      toMs: Math.min(a.to_ms ?? Date.now() + 1, span.toMs) }))
    .filter((s) => s.fromMs < s.toMs)
    .sort((a, b) => b.fromMs - a.fromMs);
}

export async function tripsTable(assignments, span) {
  const spans = heldSpans(assignments, span);
  const asked = spans.slice(0, MOST_ASSIGNMENTS);
  const tripsOf = (s) => `/v1/vehicles/${encodeURIComponent(s.vehicleId)}/trips` +
    `?from_ms=${s.fromMs}&to_ms=${s.toMs}&limit=${TRIPS_PER_ASSIGNMENT}`;
  const lists = await Promise.all(asked.map((s) => api(tripsOf(s))));
  const trips = lists.flat().sort((a, b) => b.start_ms - a.start_ms);
  const cut = spans.length > asked.length ? ` (the ${MOST_ASSIGNMENTS} newest assignments' only)` : "";
  return dataTable({
    id: "driver-trips",
    caption: `${f.count(trips.length, "trip")} that started while the driver held the vehicle${cut}; ` +
      "a trip's score is the whole trip's (its page splits a trip shared by two drivers)",
    columns: [
      { title: "Started", row: true, cell: (t) => h("a", { href: tripHref(t) }, timeCell(t.start_ms)) },
      { title: "Vehicle", cell: (t) => vehicleLink(t.vehicle_id) },
      { title: "Duration", numeric: true, cell: (t) => `${f.duration(t.duration_s)}${t.open ? " so far" : ""}` },
      { title: "Events", numeric: true, cell: (t) => f.count(total(t.event_counts), "event") },
      { title: "Trip score (of 100)", numeric: true, cell: (t) => f.score(t.score) },
    ],
    rows: trips,
    empty: "No trips started while the driver held a vehicle in this period.",
    csv: null, // several vehicles' lists: no one API query to export (each vehicle's page has its own CSV)
  });
}
