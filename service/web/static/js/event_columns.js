// The columns every table of events shares (a driver's, a vehicle's): its kind linking to the event page, its peak
// and duration with their units, and its review state. The tables add their own (when, whose vehicle or driver).

import { h } from "./dom.js";
import * as f from "./format.js";

export const EVENT_COLUMNS = {
  kind: { title: "Kind", row: true, cell: (e) => h("a", { href: `#/events/${e.key}` }, f.kindLabel(e.kind)) },
  peak: { title: "Peak", numeric: true, cell: (e) => f.peak(e.peak, e.peak_unit) },
  duration: { title: "Duration", numeric: true, cell: (e) => f.duration(e.duration_ms / 1000) },
  review: { title: "Review", cell: (e) => (e.review_state === "new" ? "not reviewed" : e.review_state) },
};
