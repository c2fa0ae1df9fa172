// The event page's chart: the +-10 s acceleration trace (GET /v1/events/{key}/trace) drawn with uPlot, with the
// kind's threshold and the event's span. uPlot is imported (uplot.js) when a chart is first drawn.

import { loadUPlot } from "./uplot.js";

const COLOURS = { longitudinal: "#0b5cad", lateral: "#b35900", vertical: "#6e40aa" };

// Shades the event's span and draws the threshold at +-threshold_g: hooks, so they redraw with the chart.
function overlays(trace) {
  const spanEnd_s = trace.event.duration_ms / 1000;
  return {
    drawClear: [
      (u) => {
        const { ctx } = u;
        const left = u.valToPos(0, "x", true);
        const right = u.valToPos(spanEnd_s, "x", true);
        ctx.save();
        ctx.fillStyle = "rgba(164, 14, 38, 0.10)";
        ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
        ctx.restore();
      },
    ],
    draw: [
      (u) => {
        if (trace.threshold_g === null) return;
        const { ctx } = u;
        ctx.save();
        ctx.strokeStyle = "#a40e26";
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        for (const level of [trace.threshold_g, -trace.threshold_g]) {
          const y = u.valToPos(level, "y", true);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
        }
        ctx.restore();
      },
    ],
  };
}

// Draws `trace` into `container`; resolves when the first frame is on the canvas, with how long it took (ms).
// A trace whose calibration did not settle has no g arrays: the caller says so instead of calling this.
export async function drawTrace(container, trace, { width = 900, height = 360 } = {}) {
  const uPlot = await loadUPlot();
  const started = performance.now();
  let drawn;
  const firstFrame = new Promise((resolve) => (drawn = resolve));
  const data = [
    trace.t_ms.map((t) => t / 1000),
    trace.longitudinal_g,
    trace.lateral_g,
    trace.vertical_g,
  ];
  const hooks = overlays(trace);
  hooks.draw.push(() => drawn(performance.now() - started));
  const plot = new uPlot(
    {
      title: "Acceleration around the event (the shaded span is the event; dashed: its threshold)",
      width,
      height,
      scales: { x: { time: false } },
      axes: [
        { label: "time from the event's start (s)" },
        { label: "acceleration (g)", values: (u, ticks) => ticks.map((v) => `${v.toFixed(2)} g`), size: 70 },
      ],
      series: [
        { label: "time (s)", value: (u, v) => (v === null ? "–" : `${v.toFixed(2)} s`) },
        { label: "longitudinal (forward +)", stroke: COLOURS.longitudinal, width: 1.5, value: gValue },
        { label: "lateral (left +)", stroke: COLOURS.lateral, width: 1.5, value: gValue },
        { label: "vertical (minus 1 g)", stroke: COLOURS.vertical, width: 1, value: gValue },
      ],
      hooks,
    },
    data,
    container,
  );
  return { plot, drawMs: await firstFrame };
}

function gValue(u, v) {
  return v === null ? "–" : `${v.toFixed(3)} g`;
}

export const TRACE_COLOURS = COLOURS;
