// Admin: assignments, who had which vehicle when (#/admin/assignments/vehicle/<id> or .../driver/<id>). Read a
// vehicle's or a driver's history, assign (POST /v1/assignments), and correct, end or delete one (PATCH, POST .../end,
// DELETE /v1/assignments/{vehicle}/{from_ms}). Every result is attributed when read, so a correction moves them all.
// Times are typed and shown in the browser's zone and sent as UTC.

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { actionForm, field, loadInto, select, values } from "./admin_forms.js";

const DRIVERS_LIST = "assignment-drivers";
const WHOSE = [["vehicle", "a vehicle"], ["driver", "a driver"]];

function at(ms) {
  return ms === null ? "open (still assigned)" : h("time", { datetime: f.isoAttr(ms) }, f.time(ms));
}

function moment(name, ms, attrs = {}) {
  return h("input", { type: "datetime-local", name, value: f.localInput(ms), ...attrs });
}

function path(a) {
  return `/v1/assignments/${encodeURIComponent(a.vehicle_id)}/${a.from_ms}`;
}

function lookupForm(whose, id) {
  const form = h("form", { id: "assignment-lookup", class: "admin-form inline-form", "aria-label": "Whose assignments" },
    field("Assignments of", select("whose", WHOSE, { value: whose || "vehicle" })),
    field("Id", h("input", { name: "id", required: true, value: id || "", autocomplete: "off", list: DRIVERS_LIST })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = values(form);
    location.hash = `#/admin/assignments/${v.whose}/${encodeURIComponent(v.id.trim())}`;
  });
  return form;
}

function assignForm({ whose, id, onUnauthorized, reload }) {
  return actionForm({
    id: "assign", title: "Assign a driver to a vehicle", submit: "Assign", onUnauthorized,
    fields: [
      field("Vehicle id", h("input", { name: "vehicle_id", required: true, autocomplete: "off", value: whose === "vehicle" ? id : "" })),
      field("Driver id", h("input", { name: "driver_id", required: true, autocomplete: "off", list: DRIVERS_LIST,
        value: whose === "driver" ? id : "" })),
      field("From", moment("from", Date.now(), { required: true }), `your time zone, ${f.zone}`),
      field("To (optional)", moment("to", null), "empty: open until someone ends it"),
    ],
    send: async (form) => {
      const v = values(form);
      const body = { vehicle_id: v.vehicle_id.trim(), driver_id: v.driver_id.trim(), from: f.isoOfLocalInput(v.from) };
      if (v.to) body.to = f.isoOfLocalInput(v.to);
      const made = await api("/v1/assignments", { method: "POST", body });
      await reload();
      return `Assigned ${made.driver_id} to ${made.vehicle_id} from ${f.time(made.from_ms)}.`;
    },
  });
}

function changePanel(a, { onUnauthorized, reload }) {
  const open = h("input", { type: "checkbox", name: "open", checked: a.to_ms === null });
  const correct = actionForm({
    id: "correct-assignment", title: "Correct it", submit: "Save the correction", onUnauthorized,
    fields: [
      field("Driver id", h("input", { name: "driver_id", required: true, value: a.driver_id, autocomplete: "off", list: DRIVERS_LIST })),
      field("From", moment("from", a.from_ms, { required: true })),
      field("To", moment("to", a.to_ms)),
      h("label", { class: "choice" }, open, " Open (no end: the driver still has the vehicle)"),
    ],
    send: async (form) => {
      const v = values(form);
      const body = {};
      if (v.driver_id.trim() !== a.driver_id) body.driver_id = v.driver_id.trim();
      if (v.from !== f.localInput(a.from_ms)) body.from = f.isoOfLocalInput(v.from);
      if (open.checked) {
        if (a.to_ms !== null) body.to = null;
      } else if (v.to !== f.localInput(a.to_ms)) {
        body.to = f.isoOfLocalInput(v.to);
      }
      if (Object.keys(body).length === 0) return "Nothing changed.";
      const saved = await api(path(a), { method: "PATCH", body });
      return reload(`Corrected: ${saved.driver_id} on ${saved.vehicle_id} from ${f.time(saved.from_ms)}.`);
    },
  });
  const end = actionForm({
    id: "end-assignment", title: "End it", submit: "End the assignment", onUnauthorized,
    fields: [field("Ends at", moment("at", Date.now(), { required: true }))],
    send: async (form) => {
      const saved = await api(`${path(a)}/end`, { method: "POST", body: { at: f.isoOfLocalInput(values(form).at) } });
      return reload(`Ended ${saved.driver_id} on ${saved.vehicle_id} at ${f.time(saved.to_ms)}.`);
    },
  });
  const remove = actionForm({
    id: "delete-assignment", title: "Delete it", submit: "Delete the assignment", onUnauthorized,
    fields: [h("label", { class: "choice" }, h("input", { type: "checkbox", name: "sure", required: true }),
      " Yes: it was never so (its trips and events then have no driver)")],
    send: async () => {
      await api(path(a), { method: "DELETE" });
      return reload(`Deleted ${a.driver_id} on ${a.vehicle_id} from ${f.time(a.from_ms)}.`);
    },
  });
  return h("section", { class: "change-panel", "aria-label": "Change an assignment" },
    h("h3", {}, `${a.driver_id} on ${a.vehicle_id} from `, at(a.from_ms)), h("div", { class: "admin-forms" }, correct, end, remove));
}

function historyTable(rows, whose, id, onChange) {
  return dataTable({
    id: "assignments-table",
    caption: `${f.count(rows.length, "assignment")} of ${whose} ${id}, newest first`,
    columns: [
      { title: "From", row: true, cell: (a) => at(a.from_ms) },
      { title: "To", cell: (a) => at(a.to_ms) },
      { title: "Vehicle", cell: (a) => a.vehicle_id },
      { title: "Driver", cell: (a) => a.driver_id },
      { title: "Set by", cell: (a) => `${a.set_by} (${a.source})` },
      { title: "Change", cell: (a) => {
        const b = h("button", { type: "button", "aria-label": `Change ${a.driver_id} on ${a.vehicle_id} from ${f.time(a.from_ms)}` }, "Change");
        b.addEventListener("click", () => onChange(a));
        return b;
      } },
    ],
    rows: [...rows].sort((x, y) => y.from_ms - x.from_ms),
    empty: `${whose === "vehicle" ? "Vehicle" : "Driver"} ${id} has no assignments: assign one below.`,
    csv: `/v1/${whose}s/${encodeURIComponent(id)}/assignments`,
    file: `assignments-${whose}-${id}.csv`,
  });
}

export function renderAssignmentsAdmin(box, { params, onUnauthorized, isStopped }) {
  const [whose, ...rest] = params.split("/");
  const id = rest.join("/");
  const known = whose === "vehicle" || whose === "driver";
  const list = h("div", {});
  const panel = h("div", {});
  const drivers = h("datalist", { id: DRIVERS_LIST });
  api("/v1/drivers").then((found) => drivers.append(...found.filter((d) => d.active)
    .map((d) => h("option", { value: d.driver_id }, d.name)))).catch(() => {}); // suggestions only
  const done = h("p", { class: "status", role: "status", tabindex: "-1" });
  // After a change the panel closes and the list is read again; what was done is said (and focused) above it.
  const reload = async (said = null) => {
    show(panel);
    done.textContent = said ?? "";
    if (said) done.focus();
    if (!known || !id) return said;
    await loadInto(list, { what: `the assignments of ${whose} ${id}`, onUnauthorized, isStopped,
      read: () => api(`/v1/${whose}s/${encodeURIComponent(id)}/assignments`),
      render: (rows) => historyTable(rows, whose, id, (a) => {
        show(panel, changePanel(a, { onUnauthorized, reload }));
        panel.querySelector("input")?.focus();
      }) });
    return said;
  };
  show(box, h("h2", {}, "Assignments"), lookupForm(known ? whose : "vehicle", id), done, list, panel,
    assignForm({ whose, id, onUnauthorized, reload }), drivers);
  if (!known || !id) show(list, h("p", { class: "status" }, "Choose a vehicle or a driver above to see and correct their assignments."));
  reload();
}
