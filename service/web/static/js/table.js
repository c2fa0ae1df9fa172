// Every table view is built here, so each has the same parts: a caption that says what the rows are, column headers
// (numeric ones right-aligned, their unit in the header or the cell), an empty state that says what to do, and a
// CSV link to the same API query (the API answers every list as CSV with ?format=csv; the cookie goes along).
//
//   dataTable({ id: "drivers-table", caption: "12 drivers", columns: [
//       { title: "Driver", row: true, cell: (d) => h("a", { href: `#/drivers/${d.driver_id}` }, d.name) },
//       { title: "Score", numeric: true, cell: (d) => f.score(d.score) } ],
//     rows, empty: "No drivers yet: an admin adds them on the Admin page.", csv: "/v1/drivers", file: "drivers.csv" })

import { h } from "./dom.js";

export function csvUrl(apiPath) {
  const url = new URL(apiPath, location.origin);
  url.searchParams.set("format", "csv");
  return url.pathname + url.search;
}

export function csvLink(apiPath, file) {
  return h("a", { class: "csv", href: csvUrl(apiPath), download: file }, "Download as CSV");
}

export function dataTable({ id, caption, columns, rows, empty, csv = null, file = "export.csv" }) {
  if (rows.length === 0) return h("p", { class: "status", id: `${id}-empty` }, empty);
  const table = h(
    "table",
    { id },
    caption ? h("caption", { class: "status" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) =>
      c.row ? h("th", { scope: "row" }, c.cell(r)) : h("td", { class: c.numeric ? "num" : null }, c.cell(r)))))),
  );
  return h("div", { class: "table-view" }, h("div", { class: "table-wrap" }, table), csv ? csvLink(csv, file) : null);
}
