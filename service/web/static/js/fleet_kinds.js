// "Fleet now"'s counts per kind, today against yesterday (UTC days): the vehicle leaderboard of each day
// (GET /v1/leaderboards/vehicles?period=day&at=...), its rows' counts summed. Both days come from the same source,
// so they compare like with like (dismissed events left out of both).

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";

const DAY_MS = 86400000;

function utcDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

async function countsOn(day) {
  const board = await api(`/v1/leaderboards/vehicles?period=day&at=${day}`);
  const totals = {};
  for (const row of board.rows) {
    for (const [kind, n] of Object.entries(row.scorecard.event_counts)) totals[kind] = (totals[kind] ?? 0) + n;
  }
  return totals;
}

function change(today, yesterday) {
  if (today === yesterday) return "no change";
  return `${today > yesterday ? "+" : "−"}${f.count(Math.abs(today - yesterday), "event")}`;
}

export async function renderKindCounts(container) {
  const now = Date.now();
  const [today, yesterday] = [utcDay(now), utcDay(now - DAY_MS)];
  const [now_, before] = await Promise.all([countsOn(today), countsOn(yesterday)]);
  const kinds = [...new Set([...Object.keys(now_), ...Object.keys(before)])].sort();
  if (kinds.length === 0) {
    show(container, h("p", { class: "status" }, `No counted events on ${yesterday} or ${today} (UTC).`));
    return;
  }
  show(
    container,
    h(
      "table",
      { id: "kind-counts" },
      h("caption", { class: "status" }, `Counted events per kind: ${today} against ${yesterday} (UTC days)`),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Kind"),
        h("th", { scope: "col", class: "num" }, "Today"),
        h("th", { scope: "col", class: "num" }, "Yesterday"),
        h("th", { scope: "col", class: "num" }, "Change"))),
      h("tbody", {}, kinds.map((kind) => {
        const [a, b] = [now_[kind] ?? 0, before[kind] ?? 0];
        return h("tr", {},
          h("th", { scope: "row" }, f.kindLabel(kind)),
          h("td", { class: "num" }, f.count(a, "event")),
          h("td", { class: "num" }, f.count(b, "event")),
          h("td", { class: "num" }, change(a, b)));
      })),
    ),
  );
}
