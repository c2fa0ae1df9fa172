// The review queue (#/reviews): the harsh events of the drivers a manager looks after that nobody has reviewed yet,
// newest first (GET /v1/reviews/queue?manager=me); each opens its event page, where the review is made.

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";

function queueTable(queue) {
  if (queue.events.length === 0) {
    return h("p", { class: "status" },
      `Nothing waits for review by ${queue.manager}. New harsh events of your drivers appear here as they happen ` +
      "(a driver's manager is set on the driver: PATCH /v1/drivers/{id}).");
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "review-queue" },
      h("caption", { class: "status" }, f.count(queue.events.length, "event"), " awaiting review",
        queue.more ? " (more wait: review these first)" : ""),
      h("thead", {}, h("tr", {}, ["Started", "Kind", "Vehicle", "Driver", "Peak"].map((t) =>
        h("th", { scope: "col", class: t === "Peak" ? "num" : null }, t)))),
      h("tbody", {}, queue.events.map((e) => h("tr", {},
        h("td", {}, h("time", { datetime: f.isoAttr(e.start_ms) }, f.time(e.start_ms))),
        h("th", { scope: "row" }, h("a", { href: `#/events/${e.key}` }, f.kindLabel(e.kind))),
        h("td", {}, e.vehicle_id),
        h("td", {}, e.driver_id ?? "nobody assigned"),
        h("td", { class: "num" }, e.peak === null ? "–" : f.peak(e.peak, e.peak_unit))))),
    ),
  );
}

export function renderQueue(main, { onUnauthorized }) {
  const body = h("div", {}, h("p", { class: "status" }, "Reading your review queue…"));
  show(main, h("h1", {}, "Review queue"), body);
  let stopped = false;
  api("/v1/reviews/queue?manager=me")
    .then((queue) => stopped || show(body, queueTable(queue)))
    .catch((error) => {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 401) return onUnauthorized("Your session has ended: log in again.");
      show(body, h("p", { class: "error", role: "alert" }, `The queue could not be read: ${error.message}. Reload to try again.`));
    });
  return () => {
    stopped = true;
  };
}
