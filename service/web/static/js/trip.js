// A trip (#/trips/<vehicle>/<start ms>), from GET /v1/vehicles/{id}/trips/{start_ms}: its facts, a timeline of its
// moving and stopped spans with every event as a marker (trip_timeline.js), its drivers (the trip cut at every change
// of driver), its events as a table, and its minute aggregates as charts (minute_charts.js).

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { tripTimeline } from "./trip_timeline.js";
import { drawMinuteCharts } from "./minute_charts.js";
import { vehiclePath } from "./vehicle.js";

// "<vehicle>/<start ms>": the vehicle's id is everything before the last slash.
function parsed(params) {
  const cut = params.lastIndexOf("/");
  const startMs = Number(params.slice(cut + 1));
  if (cut <= 0 || !Number.isSafeInteger(startMs) || startMs < 0) return null;
  return { vehicleId: params.slice(0, cut), startMs };
}

function facts(trip) {
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  const movingS = trip.parts.reduce((s, p) => s + p.driving_s, 0);
  return h(
    "dl",
    { class: "facts", id: "trip-facts" },
    row("Vehicle", h("a", { href: `#/vehicles/${encodeURIComponent(trip.vehicle_id)}` }, trip.vehicle_id)),
    row("Started", h("time", { datetime: f.isoAttr(trip.start_ms) }, f.time(trip.start_ms))),
    row("Ended", trip.open ? "still going (the figures below are so far)" : h("time", { datetime: f.isoAttr(trip.end_ms) }, f.time(trip.end_ms))),
    row("Duration", `${f.duration(trip.duration_s)} (${f.duration(movingS)} moving)`),
    row("Events", f.eventCounts(trip.event_counts)),
    row("Trip score", f.score(trip.score)),
  );
}

function partsTable(trip) {
  return dataTable({
    id: "trip-parts",
    caption: trip.parts.length > 1 ? `The trip had ${trip.parts.length} drivers, in time order` : "Who drove",
    columns: [
      { title: "Driver", row: true, cell: (p) => (p.driver_id === null ? "nobody assigned"
        : h("a", { href: `#/drivers/${encodeURIComponent(p.driver_id)}` }, p.driver_id)) },
      { title: "From", cell: (p) => h("time", { datetime: f.isoAttr(p.start_ms) }, f.time(p.start_ms)) },
      { title: "To", cell: (p) => h("time", { datetime: f.isoAttr(p.end_ms) }, f.time(p.end_ms)) },
      { title: "Moving", numeric: true, cell: (p) => f.duration(p.driving_s) },
      { title: "Events", cell: (p) => f.eventCounts(p.event_counts) },
      { title: "Score", numeric: true, cell: (p) => f.score(p.score) },
    ],
    rows: trip.parts,
    // The API has no list of a trip's parts alone (the trip's answer holds three lists): no CSV for this table yet.
    empty: "No driver was recorded for this trip.",
  });
}

function eventsTable(trip) {
  const to = Math.max(trip.end_ms, trip.start_ms + 1);
  return dataTable({
    id: "trip-events",
    caption: `${f.count(trip.events.length, "event")} in this trip, in time order`,
    columns: [
      { title: "Started", cell: (e) => h("time", { datetime: f.isoAttr(e.start_ms) }, f.time(e.start_ms)) },
      { title: "Kind", row: true, cell: (e) => h("a", { href: `#/events/${e.key}` }, f.kindLabel(e.kind)) },
      { title: "Peak", numeric: true, cell: (e) => f.peak(e.peak, e.peak_unit) },
      { title: "Duration", numeric: true, cell: (e) => f.duration((e.end_ms - e.start_ms) / 1000) },
      { title: "Dismissed", cell: (e) => (e.dismissed ? "yes: a false positive, left out of counts and scores" : "no") },
    ],
    rows: trip.events,
    empty: "No events in this trip: no stops, nothing harsh, no bumps.",
    // The same events from the vehicle's event list over the trip's span (the trip's own answer is not one list).
    csv: `${vehiclePath(trip.vehicle_id)}/events?from=${trip.start_ms}&to=${to}`,
    file: `${trip.vehicle_id}-trip-${trip.start_ms}-events.csv`,
  });
}

function section(id, title, ...body) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...body);
}

export function renderTrip(main, { params, onUnauthorized }) {
  const heading = h("h1", {}, "Trip");
  const body = h("div", {}, h("p", { class: "status" }, "Reading the trip…"));
  show(main, heading, body);
  const which = parsed(params);
  if (which === null) {
    show(body, h("p", { class: "error", role: "alert" },
      "This is no trip's address (#/trips/<vehicle>/<start in ms>). Open a trip from its vehicle's page."));
    return () => {};
  }
  let stopped = false;
  (async () => {
    let trip;
    try {
      trip = await api(`${vehiclePath(which.vehicleId)}/trips/${which.startMs}`);
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized("Your session has ended: log in again.");
      const back = h("a", { href: `#/vehicles/${encodeURIComponent(which.vehicleId)}` }, `${which.vehicleId}'s page`);
      const what = error instanceof ApiError && error.status === 404
        ? [`${error.message}. Its trips are listed on `, back, "."]
        : [`The trip could not be read: ${error.message}. Reload the page to try again, or go to `, back, "."];
      show(body, h("p", { class: "error", role: "alert" }, what));
      return;
    }
    if (stopped) return;
    heading.textContent = `Trip of ${trip.vehicle_id} from ${f.time(trip.start_ms)}`;
    document.title = `${heading.textContent} · fleetsense`;
    const charts = h("div", { id: "minute-charts" });
    show(body,
      facts(trip),
      section("timeline-h", "Timeline", tripTimeline(trip)),
      section("parts-h", "Drivers", partsTable(trip)),
      section("minutes-h", "Minute by minute", charts),
      section("trip-events-h", "Events", eventsTable(trip)));
    if (trip.minutes.length === 0) {
      show(charts, h("p", { class: "status" }, "No minute rows are stored for this trip yet: the job writes them as " +
        "the minutes pass. Reload in a minute."));
      return;
    }
    try {
      await drawMinuteCharts(charts, trip.minutes, { width: Math.min(900, main.clientWidth - 32) });
    } catch (error) {
      if (!stopped) show(charts, h("p", { class: "error", role: "alert" }, `The charts could not be drawn: ${error.message}`));
    }
  })();
  return () => {
    stopped = true;
  };
}
