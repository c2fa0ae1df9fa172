// The trip page's timeline: its moving and stopped spans, and every event as a marker, along the trip's time.
//
// Plain DOM, not uPlot's canvas: each stop and each event is a link (<a href="#/events/<key>">) with an accessible
// name, so Tab reaches it, Enter opens its event page, a screen reader reads "harsh brake at 10:32:05, peak 0.52 g",
// and the browser draws its focus ring; a canvas would need all of that rebuilt by hand. Positions are percentages of
// the trip set through element.style (CSSOM, which the page's CSP allows; a style="" attribute it would refuse).
//
// Stopped spans are the trip's `stop` events (the job records a stop under 180 s inside a trip as one; docs/
// analytics.md); the vehicle moved for the rest of the trip.

import { h } from "./dom.js";
import * as f from "./format.js";

const STOP = "stop";
const MARKER_GAP_PCT = 2; // markers of one kind closer than this share no row: the later one goes below
const MARKER_ROWS = 4; // at most; beyond, markers overlap (each still its own link, reached by Tab)
const TICK_STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 240, 480];
const MINUTE_MS = 60000;

function pctOf(ms, startMs, lengthMs) {
  return Math.min(100, Math.max(0, ((ms - startMs) / lengthMs) * 100));
}

function placed(element, leftPct, widthPct = null) {
  element.style.left = `${leftPct}%`;
  if (widthPct !== null) element.style.width = `${widthPct}%`;
  return element;
}

// Moving spans are the trip minus its stops; both in time order, clamped to the trip.
export function spansOf(trip) {
  const end = Math.max(trip.end_ms, trip.start_ms + 1);
  const stops = trip.events.filter((e) => e.kind === STOP && e.end_ms > trip.start_ms && e.start_ms < end)
    .sort((a, b) => a.start_ms - b.start_ms);
  const spans = [];
  let at = trip.start_ms;
  for (const stop of stops) {
    const from = Math.max(stop.start_ms, at);
    if (from > at) spans.push({ moving: true, start_ms: at, end_ms: from });
    const to = Math.min(stop.end_ms, end);
    if (to > from) spans.push({ moving: false, start_ms: from, end_ms: to, event: stop });
    at = Math.max(at, to);
  }
  if (end > at) spans.push({ moving: true, start_ms: at, end_ms: end });
  return spans;
}

function spanElement(span, trip, lengthMs) {
  const left = pctOf(span.start_ms, trip.start_ms, lengthMs);
  const width = Math.max(0.3, pctOf(span.end_ms, trip.start_ms, lengthMs) - left);
  const seconds = (span.end_ms - span.start_ms) / 1000;
  if (span.moving) {
    return placed(h("div", { class: "tl-span tl-moving", title: `moving from ${f.time(span.start_ms)} for ${f.duration(seconds)}` }), left, width);
  }
  const name = `stopped at ${f.time(span.start_ms)} for ${f.duration(seconds)}`;
  return placed(h("a", { class: "tl-span tl-stopped", href: `#/events/${span.event.key}`, "aria-label": name, title: name }), left, width);
}

function markerName(e) {
  const dismissed = e.dismissed ? " (dismissed as a false positive)" : "";
  return `${f.kindLabel(e.kind)} at ${f.time(e.start_ms)}, peak ${f.peak(e.peak, e.peak_unit)}${dismissed}`;
}

// The markers of one kind, each in the first row where it does not touch the one before it.
function kindTrack(events, trip, lengthMs) {
  const rowEnds = [];
  const markers = events.map((e) => {
    const left = pctOf(e.start_ms, trip.start_ms, lengthMs);
    let row = rowEnds.findIndex((end) => left - end >= MARKER_GAP_PCT);
    if (row === -1 && rowEnds.length < MARKER_ROWS) row = rowEnds.push(left) - 1;
    if (row === -1) row = rowEnds.indexOf(Math.min(...rowEnds)); // a dense cluster: overlap where there is most room
    rowEnds[row] = left;
    const name = markerName(e);
    const marker = h("a", {
      class: `tl-marker${e.dismissed ? " tl-dismissed" : ""}`, href: `#/events/${e.key}`, "aria-label": name, title: name,
      "data-key": e.key,
    });
    marker.style.top = `${row * 1.75}rem`;
    return placed(marker, left);
  });
  const track = h("div", { class: "tl-track" }, markers);
  track.style.height = `${Math.max(1, rowEnds.length) * 1.75}rem`;
  return track;
}

function ticks(trip, lengthMs) {
  const stepMin = TICK_STEPS_MIN.find((step) => lengthMs / (step * MINUTE_MS) <= 6) ?? TICK_STEPS_MIN.at(-1);
  const stepMs = stepMin * MINUTE_MS;
  const marks = [];
  // Whole steps of the operator's clock (10:30, 10:40), not of UTC: the zone's offset is taken into account.
  const offsetMs = new Date(trip.start_ms).getTimezoneOffset() * MINUTE_MS;
  for (let t = Math.ceil((trip.start_ms - offsetMs) / stepMs) * stepMs + offsetMs; t <= trip.start_ms + lengthMs; t += stepMs) {
    marks.push(placed(h("span", { class: "tl-tick" }, h("time", { datetime: f.isoAttr(t) }, f.clock(t))), pctOf(t, trip.start_ms, lengthMs)));
  }
  return h("div", { class: "tl-axis", "aria-hidden": "true" }, marks);
}

function lane(label, track) {
  return h("div", { class: "tl-lane" }, h("span", { class: "tl-label" }, label), track);
}

export function tripTimeline(trip) {
  const lengthMs = Math.max(trip.end_ms - trip.start_ms, 1000);
  const spans = spansOf(trip);
  const stops = spans.filter((s) => !s.moving);
  const movingS = spans.filter((s) => s.moving).reduce((sum, s) => sum + (s.end_ms - s.start_ms) / 1000, 0);
  const byKind = new Map();
  for (const e of trip.events.filter((e) => e.kind !== STOP).sort((a, b) => a.start_ms - b.start_ms)) {
    if (!byKind.has(e.kind)) byKind.set(e.kind, []);
    byKind.get(e.kind).push(e);
  }
  const eventCount = [...byKind.values()].reduce((n, list) => n + list.length, 0);
  const summary = `Moving for ${f.duration(movingS)}, stopped ${f.count(stops.length, "time")}` +
    (stops.length ? ` for ${f.duration(stops.reduce((s, x) => s + (x.end_ms - x.start_ms) / 1000, 0))}` : "") +
    `; ${f.count(eventCount, "event")} besides the stops. Each stop and event opens its page (Tab moves through them ` +
    "in time order); a hollow marker is an event dismissed as a false positive.";
  const spanTrack = h("div", { class: "tl-track tl-spans" }, spans.map((s) => spanElement(s, trip, lengthMs)));
  return h(
    "figure",
    { class: "timeline", id: "trip-timeline" },
    h("figcaption", {}, summary),
    lane(h("span", {}, "moving", h("span", { class: "tl-key tl-key-moving" }), " / stopped",
      h("span", { class: "tl-key tl-key-stopped" })), spanTrack),
    [...byKind].map(([kind, events]) => lane(f.kindLabel(kind), kindTrack(events, trip, lengthMs))),
    lane(`time (${f.zone})`, ticks(trip, lengthMs)),
  );
}
