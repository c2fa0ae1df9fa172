// The drivers' leaderboard (#/drivers/?period=week&at=...): every driver ranked by the period's score
// (GET /v1/leaderboards/drivers), with harsh events per hour of driving in all and per kind, the trend against the
// previous period, and the drivers whose score fell most. The API ranks; this page only sorts "dropped most".

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { periodPicker, periodQuery, parsePeriod } from "./period_picker.js";

const DROPPED_SHOWN = 10;
const PERIOD_NAMES = { day: "Day", week: "ISO week", month: "Month" };
const SESSION_ENDED = "Your session has ended: log in again.";

export function driverHref(id, chosen) {
  return `#/drivers/${encodeURIComponent(id)}?${periodQuery(chosen)}`;
}

// Every kind the rows count, in the API's order (the first row holds them all; the union guards a mixed answer).
function kindsOf(rows) {
  const kinds = new Set();
  for (const row of rows) for (const kind of Object.keys(row.scorecard.event_counts)) kinds.add(kind);
  return [...kinds];
}

// A kind's events per hour of driving (the API gives the weighed kinds' total as events_per_hour).
function kindPerHour(row, kind) {
  const card = row.scorecard;
  return card.driving_s > 0 ? (card.event_counts[kind] ?? 0) / (card.driving_s / 3600) : null;
}

function driverCell(row, chosen) {
  return [h("a", { href: driverHref(row.id, chosen) }, row.name ?? row.id),
    row.name ? h("span", { class: "detail" }, row.id) : null];
}

function driven(row) {
  return row.scorecard.driving_s > 0;
}

function trendCell(row) {
  if (row.trend !== null) {
    return [f.trend(row.trend), h("span", { class: "detail" }, `from ${f.score(row.previous_score)}`)];
  }
  return driven(row) ? "no driving in the period before" : "–";
}

function rankedTable(board, chosen, path) {
  const kinds = kindsOf(board.rows);
  const columns = [
    { title: "Rank", numeric: true, cell: (r) => String(r.rank) },
    { title: "Driver", row: true, cell: (r) => driverCell(r, chosen) },
    { title: "Score", numeric: true, cell: (r) => (driven(r)
      ? [f.score(r.scorecard.score), h("span", { class: "detail" }, `${f.duration(r.scorecard.driving_s)} driving`)]
      : "no driving") },
    { title: "Trend", numeric: true, cell: trendCell },
    { title: "Harsh events/h", numeric: true, cell: (r) => f.perHourShort(r.scorecard.events_per_hour) },
    ...kinds.map((kind) => ({
      title: `${f.kindLabel(kind)}, events/h`,
      numeric: true,
      cell: (r) => (driven(r) ? f.perHourShort(kindPerHour(r, kind)) : "–"),
    })),
  ];
  return dataTable({
    id: "driver-board",
    caption: `${f.count(board.rows.length, "driver")} ranked by score, ` +
      `${f.utcDays(board.first_day, board.last_day)}; those without driving last; events per hour of driving`,
    columns,
    rows: board.rows,
    empty: "No drivers are registered yet: a manager adds them on the Admin page (or POST /v1/drivers), " +
      "then assigns them vehicles.",
    csv: path,
    file: `drivers-${board.period}-${board.first_day}.csv`,
  });
}

function droppedTable(board, chosen, path) {
  const fallen = board.rows.filter((r) => r.trend !== null && r.trend < 0)
    .sort((a, b) => a.trend - b.trend || a.id.localeCompare(b.id))
    .slice(0, DROPPED_SHOWN);
  return dataTable({
    id: "driver-dropped",
    caption: `The ${f.count(fallen.length, "driver")} whose score fell most against the period before ` +
      `(the CSV is the whole leaderboard, with its trend column)`,
    columns: [
      { title: "Driver", row: true, cell: (r) => driverCell(r, chosen) },
      { title: "Trend", numeric: true, cell: (r) => f.trend(r.trend) },
      { title: "Score before", numeric: true, cell: (r) => f.score(r.previous_score) },
      { title: "Score now", numeric: true, cell: (r) => f.score(r.scorecard.score) },
      { title: "Harsh events per hour", numeric: true, cell: (r) => f.perHour(r.scorecard.events_per_hour) },
    ],
    rows: fallen,
    empty: "No driver's score fell against the period before (a trend needs driving in both periods).",
    csv: path,
    file: `drivers-${board.period}-${board.first_day}.csv`,
  });
}

export function renderBoard(main, { query, onUnauthorized }) {
  let chosen = parsePeriod(query);
  const state = h("p", { class: "status", role: "status" });
  const ranked = h("div", {});
  const dropped = h("div", {});
  show(
    main,
    h("h1", {}, "Drivers"),
    periodPicker(chosen, choose),
    state,
    h("section", { "aria-labelledby": "ranked-h" }, h("h2", { id: "ranked-h" }, "Leaderboard"), ranked),
    h("section", { "aria-labelledby": "dropped-h" }, h("h2", { id: "dropped-h" }, "Dropped most"), dropped),
  );
  let stopped = false;
  let asked = 0; // a slow answer to an older choice must not overwrite a newer one

  async function load() {
    const ask = ++asked;
    const path = `/v1/leaderboards/drivers?${periodQuery(chosen)}`;
    state.textContent = "Reading the leaderboard…";
    try {
      const board = await api(path);
      if (stopped || ask !== asked) return;
      state.textContent = `${PERIOD_NAMES[board.period]} ${f.utcDays(board.first_day, board.last_day)}.`;
      show(ranked, rankedTable(board, chosen, path));
      show(dropped, board.rows.length ? droppedTable(board, chosen, path) : null);
    } catch (error) {
      if (stopped || ask !== asked) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized(SESSION_ENDED);
      state.textContent = "";
      show(ranked, h("p", { class: "error", role: "alert" },
        `The leaderboard could not be read: ${error.message}. Press Show to try again.`));
      show(dropped);
    }
  }

  function choose(next) {
    chosen = next;
    // pushState fires no hashchange: the router keeps this page (and the focus stays on the control); Back re-routes.
    history.pushState(null, "", `#/drivers/?${periodQuery(chosen)}`);
    load();
  }

  load();
  return () => {
    stopped = true;
  };
}
