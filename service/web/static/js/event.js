// The event page (#/events/<vehicle>/<start ms>/<kind>): the +-10 s trace with the threshold and the event's span,
// its peak and duration, and (for a manager) the review: reviewed, coached or dismissed as a false positive, with a
// note (PUT /v1/events/{key}/review, with the session's CSRF token: api.js adds it).

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { drawTrace } from "./trace_chart.js";
import { tripHref, vehiclePath } from "./vehicle.js";

const REVIEW_STATES = [
  ["reviewed", "Reviewed"],
  ["coached", "Coached the driver"],
  ["dismissed", "Dismiss as a false positive (left out of every score)"],
];
const MAY_REVIEW = new Set(["manager", "admin"]);

function path(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

async function reviewOf(key) {
  try {
    return await api(`/v1/reviews/${path(key)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return { state: "new", note: "" };
    throw error;
  }
}

function facts(trace, review) {
  const e = trace.event;
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "facts" },
    row("Vehicle", h("a", { href: `#/vehicles/${encodeURIComponent(e.vehicle_id)}` }, e.vehicle_id)),
    row("Started", h("time", { datetime: f.isoAttr(e.start_ms) }, f.time(e.start_ms))),
    row("Duration", f.duration(e.duration_ms / 1000)),
    row("Peak", f.peak(e.peak, e.peak_unit)),
    row("Threshold", trace.threshold_g === null ? "none for this kind" : f.peak(trace.threshold_g, "g")),
    row("Vehicle class", trace.vehicle_class),
    row("Review", review.state === "new" ? "not reviewed yet" : `${review.state}${review.note ? `: ${review.note}` : ""}`),
  );
}

function reviewForm(key, review, onSaved) {
  const status = h("p", { class: "status", role: "status" });
  const note = h("textarea", { name: "note", rows: 3, maxlength: 2000 }, review.note);
  const choices = REVIEW_STATES.map(([value, label]) =>
    h("label", { class: "choice" },
      h("input", { type: "radio", name: "state", value, required: true, checked: review.state === value }), ` ${label}`));
  const form = h(
    "form",
    { class: "review" },
    h("fieldset", {}, h("legend", {}, "Review"), choices),
    h("label", {}, "Note (up to 2,000 characters)", note),
    h("button", { type: "submit" }, "Save the review"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const state = new FormData(form).get("state");
    status.textContent = "Saving…";
    try {
      const saved = await api(`/v1/events/${path(key)}/review`, { method: "PUT", body: { state, note: note.value } });
      status.textContent = `Saved: ${saved.state}.`;
      onSaved(saved);
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
    }
  });
  return form;
}

const TRIP_LOOKBACK_MS = 7 * 86400000; // the trips list's default span: a trip longer than a week is not looked for

// The vehicle's newest trip that started at or before the event (one row of the trips list, newest first): the trip
// holding the event, unless it had ended by then (tripLine checks). The trace does not name its trip and no route
// answers "the trip at a time", so this is one bounded read. Resolves to that trip's summary, or null.
async function tripOf(event) {
  const from = Math.max(0, event.start_ms - TRIP_LOOKBACK_MS);
  const [trip] = await api(`${vehiclePath(event.vehicle_id)}/trips?from_ms=${from}&to_ms=${event.start_ms + 1}&limit=1`);
  return trip ?? null;
}

function tripLine(event, onUnauthorized) {
  const line = h("p", { id: "event-trip", class: "status" }, "Looking for the trip this event is part of…");
  tripOf(event).then((trip) => {
    const link = trip && h("a", { href: tripHref(event.vehicle_id, trip.start_ms) }, `the trip from ${f.time(trip.start_ms)}`);
    if (trip !== null && (trip.open || event.start_ms < trip.end_ms)) {
      line.className = "";
      line.replaceChildren("Part of ", link, trip.open ? " (still going)." : ` (${f.duration(trip.duration_s)}).`);
    } else if (trip !== null && event.start_ms === trip.end_ms) {
      // A stop of 180 s or more ends a trip, which ends where the stop starts (docs/analytics.md).
      line.replaceChildren("Not part of a recorded trip: it started as ", link, " ended.");
    } else {
      line.textContent = "Not part of a recorded trip (the vehicle was not on a trip when it started).";
    }
  }).catch((error) => {
    if (error instanceof ApiError && error.status === 401) return onUnauthorized("Your session has ended: log in again.");
    line.textContent = `Its trip could not be looked up: ${error.message}. Reload the page to try again.`;
  });
  return line;
}

export function renderEvent(main, { session, params, onUnauthorized }) {
  const key = params;
  const chart = h("div", { id: "trace-chart" });
  const info = h("div", {}, h("p", { class: "status" }, "Reading the event's trace…"));
  const heading = h("h1", {}, "Event");
  show(main, heading, info, chart);
  let stopped = false;

  (async () => {
    try {
      const [trace, review] = await Promise.all([api(`/v1/events/${path(key)}/trace`), reviewOf(key)]);
      if (stopped) return;
      const kind = f.kindLabel(trace.event.kind);
      heading.textContent = `${kind[0].toUpperCase()}${kind.slice(1)} on ${trace.event.vehicle_id}`;
      document.title = `${heading.textContent} · fleetsense`;
      const refresh = (saved) => info.firstChild.replaceWith(facts(trace, saved));
      const trip = tripLine(trace.event, (message) => stopped || onUnauthorized(message));
      show(info, facts(trace, review), trip, MAY_REVIEW.has(session.role) ? reviewForm(key, review, refresh) : null);
      if (trace.longitudinal_g === null) {
        show(chart, h("p", { class: "status" }, "The sensor's mounting in this vehicle was not known around this " +
          "event (the vehicle did not stop within 10 minutes of it), so its trace cannot be shown in the vehicle's frame."));
        return;
      }
      const width = Math.min(900, main.clientWidth - 32);
      await drawTrace(chart, trace, { width, height: 360 });
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized("Your session has ended: log in again.");
      const what = error instanceof ApiError && error.status === 404
        ? "No such event is stored. Open an event from the live feed or an event list."
        : `The event could not be read: ${error.message}`;
      show(info, h("p", { class: "error", role: "alert" }, what));
    }
  })();
  return () => {
    stopped = true;
  };
}
