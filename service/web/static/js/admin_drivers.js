// Admin: drivers (#/admin/drivers, #/admin/drivers/<id> to change one). GET/POST /v1/drivers, PATCH
// /v1/drivers/{id}: name, employee number, badge, the manager who coaches them, and retiring (their results are kept).

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { actionForm, field, loadInto, optional, values } from "./admin_forms.js";

const MANAGERS_LIST = "driver-managers";

// The usernames that may coach (managers and admins), as suggestions: a name the API does not know is still the
// API's to refuse, and without the list the field is a plain text box.
async function managersList() {
  const list = h("datalist", { id: MANAGERS_LIST });
  try {
    const users = await api("/v1/users");
    list.append(...users.filter((u) => u.role !== "viewer" && !u.disabled).map((u) => h("option", { value: u.username })));
  } catch {
    // suggestions only
  }
  return list;
}

function since(iso) {
  return iso ? h("time", { datetime: iso }, f.time(Date.parse(iso))) : "–";
}

function driversTable(drivers) {
  return dataTable({
    id: "drivers-admin-table",
    caption: `${f.count(drivers.length, "driver")}, ${drivers.filter((d) => d.active).length} active`,
    columns: [
      { title: "Driver", row: true, cell: (d) => h("a", { href: `#/admin/drivers/${encodeURIComponent(d.driver_id)}`,
        "aria-label": `Change ${d.name} (${d.driver_id})` }, `${d.name} (${d.driver_id})`) },
      { title: "Employee no.", cell: (d) => d.employee_no ?? "–" },
      { title: "Badge", cell: (d) => d.badge_id ?? "–" },
      { title: "Manager", cell: (d) => d.manager ?? "nobody" },
      { title: "Standing", cell: (d) => (d.active ? "active" : ["retired ", since(d.retired_at)]) },
      { title: "Assignments", cell: (d) => h("a", { href: `#/admin/assignments/driver/${encodeURIComponent(d.driver_id)}` },
        `Assignments of ${d.driver_id}`) },
    ],
    rows: drivers,
    empty: "No drivers yet: add the first one with the form below.",
    csv: "/v1/drivers",
    file: "drivers.csv",
  });
}

function text(name, value = "", attrs = {}) {
  return h("input", { name, value: value ?? "", autocomplete: "off", ...attrs });
}

function addForm({ onUnauthorized, reload }) {
  return actionForm({
    id: "add-driver", title: "Add a driver", submit: "Add the driver", onUnauthorized,
    fields: [
      field("Driver id", text("driver_id", "", { required: true, pattern: "[A-Za-z0-9_\\-]{1,64}" }),
        "letters, digits, dash or underscore; it names the driver for good"),
      field("Name", text("name", "", { required: true })),
      field("Employee no. (optional)", text("employee_no")),
      field("Badge id (optional)", text("badge_id"), "the RFID badge the vehicle's reader sees, e.g. 04:A2:24:B2"),
      field("Manager (optional)", text("manager", "", { list: MANAGERS_LIST }), "the username who coaches them"),
    ],
    send: async (form) => {
      const v = values(form);
      const made = await api("/v1/drivers", { method: "POST", body: {
        driver_id: v.driver_id.trim(), name: v.name.trim(), employee_no: optional(v.employee_no),
        badge_id: optional(v.badge_id), manager: optional(v.manager) } });
      form.reset();
      await reload();
      return `Added ${made.name} (${made.driver_id}).`;
    },
  });
}

function editForm(driver, { onUnauthorized, reload }) {
  const active = h("input", { type: "checkbox", name: "active", checked: driver.active });
  return actionForm({
    id: "edit-driver", title: `Change ${driver.name} (${driver.driver_id})`, submit: "Save the changes", onUnauthorized,
    fields: [
      field("Name", text("name", driver.name, { required: true })),
      field("Employee no. (empty: none)", text("employee_no", driver.employee_no)),
      field("Badge id (empty: none)", text("badge_id", driver.badge_id)),
      field("Manager (empty: nobody)", text("manager", driver.manager, { list: MANAGERS_LIST })),
      h("label", { class: "choice" }, active, " Active (clear to retire them: their results are kept)"),
    ],
    send: async (form) => {
      const v = values(form);
      const wanted = { name: v.name.trim(), employee_no: optional(v.employee_no), badge_id: optional(v.badge_id),
        manager: optional(v.manager) };
      // Only what changed is sent: PATCH changes the fields given, and an unchanged badge is no conflict to risk.
      const body = Object.fromEntries(Object.entries(wanted).filter(([k, value]) => value !== driver[k]));
      if (active.checked !== driver.active) body.retire = !active.checked;
      if (Object.keys(body).length === 0) return "Nothing changed.";
      Object.assign(driver, await api(`/v1/drivers/${encodeURIComponent(driver.driver_id)}`, { method: "PATCH", body }));
      await reload();
      return `Saved ${driver.name}${driver.active ? "" : " (retired)"}.`;
    },
  });
}

export function renderDriversAdmin(box, { params, onUnauthorized, isStopped }) {
  const list = h("div", {});
  const editing = h("div", {});
  let drivers = [];
  const reload = () => loadInto(list, { what: "the drivers", read: () => api("/v1/drivers"), onUnauthorized, isStopped,
    render: (found) => {
      drivers = found;
      return driversTable(found);
    } });
  show(box, h("h2", {}, "Drivers"), list, editing, addForm({ onUnauthorized, reload }));
  managersList().then((datalist) => isStopped() || box.append(datalist));
  reload().then(() => {
    if (!params || isStopped()) return;
    const driver = drivers.find((d) => d.driver_id === params);
    show(editing, driver ? editForm(driver, { onUnauthorized, reload })
      : h("p", { class: "error", role: "alert" }, `There is no driver ${params}: choose one in the list.`));
    editing.querySelector("input")?.focus();
  });
}
