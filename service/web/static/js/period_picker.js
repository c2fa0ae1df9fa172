// The drivers' pages' period: day, ISO week or month (UTC, as the API counts them) and a day of it, kept in the hash
// after the page's path (#/drivers/?period=week&at=2026-12-01), so a reload or a shared link shows the same period.
// The router splits the hash at "/", so the query follows a "/" (#/drivers?period=... would name no page).

import { h } from "./dom.js";

export const PERIODS = [
  ["day", "Day"],
  ["week", "Week (Monday to Sunday)"],
  ["month", "Month"],
];
const DAY_MS = 86400000;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

export function utcToday() {
  return new Date().toISOString().slice(0, 10);
}

// `text` is what follows "?" in the page's params; anything not understood falls back to this week.
export function parsePeriod(text) {
  const query = new URLSearchParams(text);
  const period = PERIODS.some(([p]) => p === query.get("period")) ? query.get("period") : "week";
  const at = query.get("at");
  const valid = at !== null && ISO_DAY.test(at) && !Number.isNaN(Date.parse(`${at}T00:00:00Z`));
  return { period, at: valid ? at : utcToday() };
}

export function periodQuery({ period, at }) {
  return new URLSearchParams({ period, at }).toString();
}

// A day of the period before (step -1) or after (step +1) the one holding `at`.
export function shifted({ period, at }, step) {
  const day = new Date(`${at}T00:00:00Z`);
  const isoDay = (moment) => moment.toISOString().slice(0, 10);
  if (period === "month") {
    return { period, at: isoDay(new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth() + step, 1))) };
  }
  const days = period === "week" ? 7 : 1;
  return { period, at: isoDay(new Date(day.getTime() + step * days * DAY_MS)) };
}

// A form: the period, a day of it, "Show", and the periods before and after. `onChoose({period, at})` is called on
// submit (Enter in the date field too); changing the select alone queries nothing, so arrow keys through it are free.
export function periodPicker(chosen, onChoose) {
  const period = h("select", { name: "period", id: "period" },
    PERIODS.map(([value, label]) => h("option", { value, selected: value === chosen.period }, label)));
  const at = h("input", { type: "date", name: "at", id: "period-at", value: chosen.at, required: true });
  const current = () => ({ period: period.value, at: at.value || utcToday() });
  const step = (n) => (event) => {
    event.preventDefault();
    const next = shifted(current(), n);
    at.value = next.at;
    onChoose(next);
  };
  const form = h(
    "form",
    { class: "period-picker", "aria-label": "Choose the period" },
    h("label", { for: "period" }, "Period"),
    period,
    h("label", { for: "period-at" }, "A day of it (UTC)"),
    at,
    h("button", { type: "submit" }, "Show"),
    h("button", { type: "button", "aria-label": "Previous period", onclick: step(-1) }, "← Previous"),
    h("button", { type: "button", "aria-label": "Next period", onclick: step(1) }, "Next →"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChoose(current());
  });
  return form;
}
