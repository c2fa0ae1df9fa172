// Every number the page shows goes through a formatter here, with its unit; every time in the browser's zone.

export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function time(ms) {
  if (ms === null || ms === undefined) return "–";
  const moment = new Date(ms);
  const today = new Date().toDateString() === moment.toDateString();
  return today ? timeOfDay.format(moment) : dateTime.format(moment);
}

export function isoAttr(ms) {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

const one = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const two = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 });
const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds === 0) return "0 s";
  if (seconds < 10) return `${one.format(seconds)} s`; // an event lasts a fraction of a second
  if (seconds < 60) return `${whole.format(seconds)} s`;
  if (seconds < 3600) return `${whole.format(Math.floor(seconds / 60))} min`;
  return `${whole.format(Math.floor(seconds / 3600))} h ${whole.format(Math.floor((seconds % 3600) / 60))} min`;
}

export function score(points) {
  return points === null || points === undefined ? "–" : `${one.format(points)} / 100`;
}

export function count(n, noun) {
  return `${whole.format(n)} ${noun}${n === 1 ? "" : "s"}`;
}

export function peak(value, unit) {
  return `${two.format(value)} ${unit}`;
}

export function kindLabel(kind) {
  return kind.replaceAll("_", " ");
}

// Drivers' pages: rates per hour of driving, a score's change in points, a UTC period's days.
export function perHour(rate) {
  return rate === null || rate === undefined ? "no driving" : `${two.format(rate)} events/h`;
}

// The compact form for a table whose column header names the events ("harsh brake, events/h"): "0.10/h".
export function perHourShort(rate) {
  return rate === null || rate === undefined ? "no driving" : `${two.format(rate)}/h`;
}

export function trend(points) {
  if (points === null || points === undefined) return "–";
  const size = one.format(Math.abs(points));
  if (size === one.format(0)) return `±${size} points`; // -0.04 would read "−0.0": no sign for what rounds to none
  return `${points > 0 ? "+" : "−"}${size} points`;
}

export function utcDays(firstDay, lastDay) {
  return firstDay === lastDay ? `${firstDay} (UTC)` : `${firstDay} to ${lastDay} (UTC days)`;
}

// --- the vehicle and trip pages ---

export function g(value) {
  return value === null || value === undefined ? "–" : `${two.format(value)} g`;
}

// An event_counts map ({harsh_brake: 2, bump: 0, ...}) as "2 harsh brake, 1 bump"; kinds with none left out.
export function eventCounts(counts) {
  const some = Object.entries(counts ?? {}).filter(([, n]) => n > 0);
  return some.length === 0 ? "no events" : some.map(([kind, n]) => `${whole.format(n)} ${kindLabel(kind)}`).join(", ");
}

export function countTotal(counts) {
  return Object.values(counts ?? {}).reduce((sum, n) => sum + n, 0);
}

// A UTC day as the API names it (YYYY-MM-DD): scorecards' days are UTC, so shown as such, never shifted to the zone.
const utcDate = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", weekday: "short", month: "short", day: "numeric" });

export function utcDay(isoDate) {
  return `${utcDate.format(new Date(`${isoDate}T00:00:00Z`))} (UTC)`;
}

const clockOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export function clock(ms) {
  return ms === null || ms === undefined ? "–" : clockOnly.format(new Date(ms));
}

// --- admin forms: a moment as <input type="datetime-local"> holds it (the browser's zone, to the minute) and back

export function localInput(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function isoOfLocalInput(value) {
  // "2026-12-06T08:00" is read in the browser's zone (what the operator typed), sent with its offset as UTC.
  return value ? new Date(value).toISOString() : null;
}

export function milliseconds(ms) {
  return ms === null || ms === undefined ? "–" : `${whole.format(ms)} ms`;
}
