// "Fleet now": every vehicle from GET /v1/fleet (a snapshot a few seconds old, refreshed here every 10 s) and the
// live event feed from GET /v1/events/live (Server-Sent Events), which updates without a reload.

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { renderKindCounts } from "./fleet_kinds.js";
import { dataTable } from "./table.js";
import { eventKinds } from "./catalog.js";

const REFRESH_MS = 10000;
const KINDS_REFRESH_MS = 60000; // two leaderboards of the whole fleet: heavier than the snapshot
const FEED_ITEMS = 100; // the newest kept on the page; the API's event lists hold the rest
const EARLIER_MS = 3600000; // the feed opens with the last hour's events...
const EARLIER_ITEMS = 20; // ...the newest of them
const SESSION_ENDED = "Your session has ended: log in again.";

function status(v) {
  if (v.online === null) return h("span", {}, "no status yet");
  return h("span", { class: v.online ? "online" : "offline" }, v.online ? "online" : `offline (${v.status_reason ?? "unknown"})`);
}

// Today's harsh events (the kinds a driver is judged on, as GET /v1/event-kinds declares them) with every counted
// kind, bumps too, listed under it. Until the kinds are read (or if they cannot be), every counted event is summed.
function eventsToday(v, harsh) {
  const events = Object.entries(v.events_today);
  const judged = harsh === null ? events : events.filter(([k]) => harsh.has(k));
  const total = judged.reduce((sum, [, n]) => sum + n, 0);
  const some = events.filter(([, n]) => n > 0);
  return [f.count(total, harsh === null ? "event" : "harsh event"), some.length > 0
    ? h("span", { class: "detail" }, some.map(([k, n]) => `${n} ${f.kindLabel(k)}`).join(", ")) : null];
}

const columns = (harsh) => [
  { title: "Vehicle", row: true, cell: (v) => h("a", { href: `#/vehicles/${encodeURIComponent(v.vehicle_id)}` }, v.label ?? v.vehicle_id) },
  { title: "Status", cell: status },
  { title: "Driver", cell: (v) => v.driver_id === null ? "nobody assigned"
    : h("a", { href: `#/drivers/${encodeURIComponent(v.driver_id)}` }, v.driver_id) },
  { title: "Current trip", cell: (v) => v.trip_open
    ? h("a", { href: `#/trips/${encodeURIComponent(v.vehicle_id)}/${v.trip_start_ms}` }, "since ",
      h("time", { datetime: f.isoAttr(v.trip_start_ms) }, f.time(v.trip_start_ms)), ` (${f.duration(v.trip_duration_s)})`)
    : "no trip" },
  { title: "Events today", numeric: true, cell: (v) => eventsToday(v, harsh) },
  { title: "Score today", numeric: true, cell: (v) => f.score(v.score_today) },
  { title: "Driving today", numeric: true, cell: (v) => f.duration(v.driving_s_today) },
  { title: "Last seen", cell: (v) => h("time", { datetime: f.isoAttr(v.last_seen_ms) }, f.time(v.last_seen_ms)) },
];

function fleetTable(vehicles, harsh) {
  const counted = harsh === null ? "every counted kind, bumps too" : "harsh events, every counted kind listed under them";
  return dataTable({
    id: "fleet-table",
    caption: [f.count(vehicles.length, "vehicle"), `; events today: ${counted} (today is the UTC day)`],
    columns: columns(harsh),
    rows: vehicles,
    empty: "No vehicles in this fleet yet. An admin registers them (Admin, Vehicles), or `fleetsense gateway provision` does.",
    csv: "/v1/fleet",
    file: "fleet.csv",
  });
}

// The table is rebuilt every 10 s: a keyboard user whose focus is on one of its links keeps it (the same link in the
// new table, found by its href), instead of being thrown back to the top of the page.
function replaceKeepingFocus(container, content) {
  const focused = container.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
  show(container, content);
  if (focused === null) return;
  const again = [...container.querySelectorAll("a[href]")].find((a) => a.getAttribute("href") === focused);
  if (again) again.focus();
}

function feedItem(event) {
  return h(
    "li",
    { "data-key": event.key },
    h("time", { datetime: f.isoAttr(event.start_ms) }, f.time(event.start_ms)),
    h("a", { href: `#/events/${event.key}` }, h("strong", {}, f.kindLabel(event.kind))),
    ` · ${event.vehicle_id} · peak ${f.peak(event.peak, event.peak_unit)} · ${f.duration(event.duration_ms / 1000)}`,
  );
}

export function renderFleet(main, { onUnauthorized }) {
  // Not a live region: it changes every 10 s, and a screen reader would read it out each time (errors are alerts).
  const asOf = h("p", { class: "status" }, "Reading the fleet…");
  const table = h("div", {});
  const feedState = h("p", { class: "status", "aria-live": "polite" }, "Connecting to the live feed…");
  const feed = h("ol", { id: "live-feed", class: "feed", "aria-label": "Live events, newest first" });
  const kinds = h("div", {}, h("p", { class: "status" }, "Reading today's and yesterday's counts…"));
  show(
    main,
    h("h1", {}, "Fleet now"),
    h("div", { class: "layout" },
      h("section", { "aria-labelledby": "vehicles-h" }, h("h2", { id: "vehicles-h" }, "Vehicles"), asOf, table),
      h("div", {},
        h("section", { "aria-labelledby": "feed-h" }, h("h2", { id: "feed-h" }, "Live events"), feedState, feed),
        h("section", { "aria-labelledby": "kinds-h" }, h("h2", { id: "kinds-h" }, "Today against yesterday"), kinds))),
  );

  let harsh = null; // the harsh kinds' keys, once read
  const kindsRead = eventKinds().then((kinds) => {
    harsh = new Set(kinds.filter((k) => k.harsh).map((k) => k.key));
  }).catch(() => {}); // the table then sums every counted kind, and its caption says so

  let timer = null;
  let stopped = false;
  let usable = false;
  async function refresh() {
    let wait = REFRESH_MS;
    try {
      const [fleet] = await Promise.all([api("/v1/fleet"), kindsRead]); // read together: one wait, not two
      if (stopped) return;
      replaceKeepingFocus(table, fleetTable(fleet.vehicles, harsh));
      asOf.replaceChildren("As of ", h("time", { datetime: f.isoAttr(fleet.as_of_ms) }, f.time(fleet.as_of_ms)),
        `; refreshed every ${REFRESH_MS / 1000} s.`);
      if (!usable) {
        usable = true;
        performance.mark("fleet-usable"); // what bench/dashboard.py measures
      }
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized(SESSION_ENDED);
      if (error instanceof ApiError && error.status === 503) wait = 5000;
      asOf.replaceChildren(h("span", { class: "error", role: "alert" }, error.message),
        ` Trying again in ${wait / 1000} s.`);
    }
    if (!stopped) timer = setTimeout(refresh, wait);
  }
  refresh();

  let kindsTimer = null;
  async function refreshKinds() {
    try {
      await renderKindCounts(kinds);
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized(SESSION_ENDED);
      show(kinds, h("p", { class: "error", role: "alert" },
        `The counts per kind are not available (${error.message}); trying again in ${KINDS_REFRESH_MS / 1000} s.`));
    }
    if (!stopped) kindsTimer = setTimeout(refreshKinds, KINDS_REFRESH_MS);
  }
  refreshKinds();

  // The feed starts with the last hour's newest events (a manager opening the page sees what just happened), then
  // the live ones go on top; an event both read and streamed is shown once (its key).
  const shown = (key) => feed.querySelector(`li[data-key="${CSS.escape(key)}"]`) !== null;
  api(`/v1/events?from=${Date.now() - EARLIER_MS}&limit=${EARLIER_ITEMS}`).then((page) => {
    if (stopped) return;
    for (const event of page.items) if (!shown(event.key)) feed.append(feedItem(event));
  }).catch(() => {}); // the live feed still works; the feed's state line says how it is

  const source = new EventSource("/v1/events/live");
  source.onopen = () => {
    feedState.textContent = "Connected: new events appear here as they are stored.";
  };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (shown(event.key)) return;
    feed.prepend(feedItem(event));
    while (feed.childElementCount > FEED_ITEMS) feed.lastElementChild.remove();
  };
  source.onerror = async () => {
    if (source.readyState === EventSource.CONNECTING) {
      feedState.textContent = "Connection lost: reconnecting (the feed resumes after the last event shown)…";
      return;
    }
    // CLOSED: the server refused the stream (the session ended, or the API runs without a live feed).
    try {
      await api("/v1/auth/me");
      feedState.textContent = "The live feed is not available from this server; reload the page to try again.";
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) onUnauthorized(SESSION_ENDED);
      else feedState.textContent = `The live feed stopped: ${error.message}`;
    }
  };

  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(kindsTimer);
    source.close();
  };
}
