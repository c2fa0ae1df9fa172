// A driver's score over time (GET /v1/drivers/{id}/scorecard?series=N) as a uPlot line chart: the score (of 100) on
// the left axis, harsh events per hour of driving on the right. A period without driving has no score: a gap, not
// a 100. Each period is drawn at its middle, so a UTC day lands on the same calendar day in the browser's zone
// (from UTC-12 to UTC+12), where uPlot's time axis labels it.

import { loadUPlot } from "./uplot.js";
import { score, utcDays, zone } from "./format.js";

export const SCORE_COLOURS = { score: "#0b5cad", perHour: "#b35900" };
const DAY_MS = 86400000;

function middleSeconds(card) {
  const first = Date.parse(`${card.first_day}T00:00:00Z`);
  const end = Date.parse(`${card.last_day}T00:00:00Z`) + DAY_MS;
  return (first + end) / 2 / 1000;
}

export function scoreData(periods) {
  const driven = (c) => c.driving_s > 0;
  return [
    periods.map(middleSeconds),
    periods.map((c) => (driven(c) ? c.score : null)),
    periods.map((c) => (driven(c) ? c.events_per_hour : null)),
  ];
}

// What a screen reader hears for the canvas (the periods' table after it holds every number).
function summary(periods) {
  const driven = periods.filter((c) => c.driving_s > 0);
  const span = utcDays(periods[0].first_day, periods[periods.length - 1].last_day);
  if (driven.length === 0) return `No driving from ${span}: no score to draw.`;
  return `Score per period from ${span}: ${score(driven[0].score)} in the first period with driving, ` +
    `${score(driven[driven.length - 1].score)} in the last; the table after the chart lists every period.`;
}

// Draws into `container`; resolves when the first frame is on the canvas.
export async function drawScores(container, periods, { width = 900, height = 320 } = {}) {
  const uPlot = await loadUPlot();
  const labels = new Map(periods.map((c) => [middleSeconds(c), utcDays(c.first_day, c.last_day)]));
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", summary(periods));
  let drawn;
  const firstFrame = new Promise((resolve) => (drawn = resolve));
  const plot = new uPlot(
    {
      title: "Score and harsh events per hour of driving, per period (a gap: no driving)",
      width,
      height,
      scales: {
        x: { time: true },
        score: { range: [0, 100] },
        rate: { range: (u, min, max) => [0, Math.max(1, max ?? 0) * 1.1] },
      },
      axes: [
        { label: `period (times in ${zone})` },
        { scale: "score", label: "score (points of 100)", values: (u, ticks) => ticks.map((v) => `${v}`), size: 50 },
        { scale: "rate", side: 1, label: "harsh events per hour (events/h)", grid: { show: false },
          values: (u, ticks) => ticks.map((v) => `${v.toFixed(1)}/h`), size: 60 },
      ],
      series: [
        { label: "period", value: (u, v) => labels.get(v) ?? "–" },
        { label: "score (of 100)", scale: "score", stroke: SCORE_COLOURS.score, width: 2.5,
          points: { show: true, size: 7 }, value: (u, v) => (v === null ? "no driving" : `${v.toFixed(1)} / 100`) },
        { label: "harsh events per hour", scale: "rate", stroke: SCORE_COLOURS.perHour, width: 1.5, dash: [6, 4],
          points: { show: true, size: 5 }, value: (u, v) => (v === null ? "no driving" : `${v.toFixed(2)} events/h`) },
      ],
      hooks: { draw: [() => drawn()] },
    },
    scoreData(periods),
    container,
  );
  await firstFrame;
  return plot;
}
