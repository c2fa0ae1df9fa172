// A driver's scorecard (#/drivers/<id>?period=week&at=...): who they are and their manager (GET /v1/drivers/{id}),
// their score over the last periods as a chart and a table (GET /v1/drivers/{id}/scorecard?series=N), the chosen
// period's events by kind, and its events, assignments and trips (driver_activity.js). Each part fails on its own.

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { periodPicker, periodQuery, parsePeriod } from "./period_picker.js";
import { drawScores } from "./score_chart.js";
import { assignmentsOf, assignmentsTable, eventsTable, tripsTable } from "./driver_activity.js";

const SERIES = { day: 31, week: 12, month: 12 }; // periods drawn back from the chosen one (the API allows 31)
const DAY_MS = 86400000;
const SESSION_ENDED = "Your session has ended: log in again.";

function facts(driver) {
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "facts" },
    row("Driver id", driver.driver_id),
    row("Manager", driver.manager ?? "none set (an admin sets one on the Admin page)"),
    driver.employee_no ? row("Employee no.", driver.employee_no) : null,
    row("Status", driver.active ? "active" : "retired (their results are kept)"),
  );
}

function periodsTable(series, path) {
  return dataTable({
    id: "driver-periods",
    caption: `The chart's ${f.count(series.periods.length, series.period)}, newest first`,
    columns: [
      { title: "Period", row: true, cell: (c) => f.utcDays(c.first_day, c.last_day) },
      { title: "Score (of 100)", numeric: true, cell: (c) => (c.driving_s > 0 ? f.score(c.score) : "no driving") },
      { title: "Harsh events", numeric: true, cell: (c) => f.count(c.harsh_events, "event") },
      { title: "Harsh events per hour", numeric: true, cell: (c) => f.perHour(c.events_per_hour) },
      { title: "Driving", numeric: true, cell: (c) => f.duration(c.driving_s) },
    ],
    rows: [...series.periods].reverse(),
    empty: "No periods.",
    csv: path,
    file: `${series.id}-scorecard-${series.period}.csv`,
  });
}

function kindsTable(card, path) {
  const rows = Object.entries(card.event_counts).map(([kind, n]) => ({ kind, n }));
  return dataTable({
    id: "driver-kinds",
    caption: `Events by kind, ${f.utcDays(card.first_day, card.last_day)} (dismissed ones left out)`,
    columns: [
      { title: "Kind", row: true, cell: (r) => f.kindLabel(r.kind) },
      { title: "Events", numeric: true, cell: (r) => f.count(r.n, "event") },
      { title: "Per hour of driving", numeric: true,
        cell: (r) => f.perHour(card.driving_s > 0 ? r.n / (card.driving_s / 3600) : null) },
    ],
    rows,
    empty: "No kinds are counted.",
    csv: path,
    file: `${card.first_day}-scorecard.csv`,
  });
}

function failure(error, what, onUnauthorized) {
  if (error instanceof ApiError && error.status === 401) {
    onUnauthorized(SESSION_ENDED);
    return null;
  }
  return h("p", { class: "error", role: "alert" },
    `${what} could not be read: ${error.message}. Press Show to try again.`);
}

export function renderDriverCard(main, { driverId, query, onUnauthorized }) {
  let chosen = parsePeriod(query);
  const heading = h("h1", {}, `Driver ${driverId}`);
  const about = h("div", {}, h("p", { class: "status" }, "Reading the driver…"));
  const state = h("p", { class: "status", role: "status" });
  const chart = h("div", { id: "score-chart" });
  const reading = () => h("p", { class: "status" }, "Reading…");
  const periods = h("div", {});
  const kinds = h("div", {}, reading());
  const events = h("div", {}, reading());
  const assignments = h("div", {}, reading());
  const trips = h("div", {}, reading());
  const section = (id, title, ...body) => h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...body);
  const allDrivers = h("a", { href: `#/drivers/?${periodQuery(chosen)}` }, "← All drivers");
  show(main,
    h("p", {}, allDrivers),
    heading, about, periodPicker(chosen, choose), state,
    section("score-h", "Score over time", chart, periods),
    section("kinds-h", "Events by kind", kinds),
    section("events-h", "Events", events),
    section("trips-h", "Trips", trips),
    section("assignments-h", "Assignments", assignments));
  let stopped = false;
  let asked = 0;
  const base = `/v1/drivers/${encodeURIComponent(driverId)}`;

  // Builds one part into `target`, unless the page was left or (with `ask`) a newer period was chosen meanwhile.
  async function part(target, what, build, ask = null) {
    const current = () => !stopped && (ask === null || ask === asked);
    try {
      const built = await build();
      if (current()) show(target, built);
    } catch (error) {
      if (current()) show(target, failure(error, what, onUnauthorized));
    }
  }

  async function loadDriver() {
    try {
      const driver = await api(base);
      if (stopped) return;
      heading.textContent = driver.name;
      document.title = `${driver.name} · Drivers · fleetsense`;
      show(about, facts(driver));
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 404) {
        stopped = true; // nothing else of a driver who does not exist is worth showing
        show(main, heading, h("p", { class: "error", role: "alert" }, `There is no driver ${driverId}. Pick one from `,
          h("a", { href: "#/drivers" }, "the leaderboard"), "."));
      } else show(about, failure(error, "The driver", onUnauthorized));
    }
  }

  async function load() {
    const ask = ++asked;
    state.textContent = "Reading the scorecard…";
    for (const target of [kinds, events, trips]) show(target, reading());
    // The assignments do not depend on the period, but Show re-reads them too: it is the page's one way to retry.
    const held = assignmentsOf(driverId);
    held.catch(() => {}); // its failure is shown by the parts that await it
    part(assignments, "The assignments", async () => assignmentsTable(driverId, await held), ask);
    const seriesPath = `${base}/scorecard?${periodQuery(chosen)}&series=${SERIES[chosen.period]}`;
    const cardPath = `${base}/scorecard?${periodQuery(chosen)}&series=1`;
    let series;
    try {
      series = await api(seriesPath);
    } catch (error) {
      if (stopped || ask !== asked) return;
      state.textContent = "";
      show(chart, failure(error, "The scorecard", onUnauthorized));
      show(periods);
      for (const target of [kinds, events, trips]) {
        show(target, h("p", { class: "status" }, "Shown once the scorecard is read (it names the period's days)."));
      }
      return;
    }
    if (stopped || ask !== asked) return;
    const card = series.periods[series.periods.length - 1];
    const span = { fromMs: Date.parse(`${card.first_day}T00:00:00Z`),
      toMs: Date.parse(`${card.last_day}T00:00:00Z`) + DAY_MS };
    state.textContent = `The chosen period: ${f.utcDays(card.first_day, card.last_day)}; ` +
      `score ${card.driving_s > 0 ? f.score(card.score) : "none (no driving)"}, ` +
      `${f.perHour(card.events_per_hour)}, ${f.duration(card.driving_s)} driving.`;
    show(periods, periodsTable(series, seriesPath));
    show(kinds, kindsTable(card, cardPath));
    show(chart);
    part(chart, "The chart", async () => {
      const box = h("div", {});
      chart.replaceChildren(box);
      await drawScores(box, series.periods, { width: Math.min(900, main.clientWidth - 32), height: 320 });
      return box;
    }, ask);
    part(events, "The events", () => eventsTable(driverId, span), ask);
    part(trips, "The trips", async () => tripsTable(await held, span), ask);
  }

  function choose(next) {
    chosen = next;
    history.pushState(null, "", `#/drivers/${encodeURIComponent(driverId)}?${periodQuery(chosen)}`);
    allDrivers.setAttribute("href", `#/drivers/?${periodQuery(chosen)}`);
    load();
  }

  loadDriver();
  load();
  return () => {
    stopped = true;
  };
}
