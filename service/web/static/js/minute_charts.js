// The trip page's minute aggregates as uPlot charts: moving time per minute (s), and per minute the largest
// longitudinal and lateral acceleration and the vertical RMS (g). The time axis is uPlot's time scale, which draws
// in the browser's zone (its default tzDate), the zone named on the axis. uPlot is imported only when a trip is drawn.

import { h } from "./dom.js";
import * as f from "./format.js";
import { loadUPlot } from "./uplot.js";

export const MINUTE_COLOURS = { moving: "#116329", longitudinal: "#0b5cad", lateral: "#b35900", vertical: "#6e40aa" };

const timeAxis = () => ({ label: `time (${f.zone})` });

function drawn(options) {
  let resolve;
  const done = new Promise((r) => (resolve = r));
  options.hooks = { draw: [() => resolve()] };
  return done;
}

async function chart(container, options, data) {
  const uPlot = await loadUPlot();
  const first = drawn(options);
  const plot = new uPlot(options, data, container);
  await first;
  return plot;
}

function movingChart(uPlot, minutes, width) {
  return {
    title: "Moving time per minute",
    width,
    height: 220,
    scales: { y: { range: [0, 60] } },
    axes: [timeAxis(), { label: "moving time (s)", values: (u, ticks) => ticks.map((v) => `${v} s`), size: 60 }],
    series: [
      { label: "minute", value: (u, v) => (v === null ? "–" : f.time(v * 1000)) },
      { label: "moving", stroke: MINUTE_COLOURS.moving, fill: MINUTE_COLOURS.moving, paths: uPlot.paths.bars({ size: [0.8, 40] }),
        points: { show: false }, value: (u, v) => (v === null ? "–" : `${v.toFixed(0)} s`) },
    ],
  };
}

function accelerationChart(width) {
  const g = (u, v) => (v === null ? "–" : `${v.toFixed(2)} g`);
  return {
    title: "Acceleration per minute (largest |longitudinal| and |lateral|, vertical RMS)",
    width,
    height: 260,
    scales: { y: { range: (u, lo, hi) => [0, Math.max(0.5, Math.ceil((hi ?? 0) * 10) / 10)] } },
    axes: [timeAxis(), { label: "acceleration (g)", values: (u, ticks) => ticks.map((v) => `${v.toFixed(2)} g`), size: 70 }],
    series: [
      { label: "minute", value: (u, v) => (v === null ? "–" : f.time(v * 1000)) },
      { label: "longitudinal (largest)", stroke: MINUTE_COLOURS.longitudinal, width: 2, value: g },
      { label: "lateral (largest)", stroke: MINUTE_COLOURS.lateral, width: 2, value: g },
      { label: "vertical (RMS)", stroke: MINUTE_COLOURS.vertical, width: 2, value: g },
    ],
  };
}

// What the charts show, in words: the canvas is not read by a screen reader.
function summary(minutes) {
  const best = (field) => minutes.reduce((top, m) => (m[field] !== null && (top === null || m[field] > top[field]) ? m : top), null);
  const at = (m, field) => (m === null ? "not known (the sensor's mounting was not calibrated yet)"
    : `${f.g(m[field])} in the minute from ${f.clock(m.minute_ms)}`);
  const movingS = minutes.reduce((s, m) => s + (m.driving_s ?? 0), 0);
  return `${f.count(minutes.length, "minute")} recorded, ${f.duration(movingS)} moving. Largest longitudinal: ` +
    `${at(best("max_longitudinal_g"), "max_longitudinal_g")}; largest lateral: ${at(best("max_lateral_g"), "max_lateral_g")}.`;
}

// Draws both charts into `container` (empty: the caller says so); resolves when both have drawn their first frame.
export async function drawMinuteCharts(container, minutes, { width = 900 } = {}) {
  const uPlot = await loadUPlot();
  const x = minutes.map((m) => m.minute_ms / 1000 + 30); // each value sits in the middle of its minute
  const moving = h("div", { id: "minute-moving" });
  const accel = h("div", { id: "minute-acceleration" });
  container.append(h("p", { class: "status" }, summary(minutes)), moving, accel);
  await Promise.all([
    chart(moving, movingChart(uPlot, minutes, width), [x, minutes.map((m) => m.driving_s)]),
    chart(accel, accelerationChart(width), [x, minutes.map((m) => m.max_longitudinal_g),
      minutes.map((m) => m.max_lateral_g), minutes.map((m) => m.rms_vertical_g)]),
  ]);
}
