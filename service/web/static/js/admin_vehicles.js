// Admin: vehicles and their classes (#/admin/vehicles). The fleet's vehicles (GET /v1/vehicles, every page), the
// classes and their thresholds (GET /v1/vehicle-classes, labelled by GET /v1/event-kinds); register (POST
// /v1/vehicles), relabel (PATCH /v1/vehicles/{id}) and set a class (PUT /v1/vehicles/{id}/class).

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { eventKinds, labelOf, vehicleClasses } from "./catalog.js";
import { actionForm, field, loadInto, optional, select, values } from "./admin_forms.js";

const VEHICLES_LIST = "admin-vehicle-ids";
const PAGE = 1000; // the API's largest page: 2,000 vehicles are two requests

async function everyVehicle() {
  let page = await api(`/v1/vehicles?limit=${PAGE}`);
  const vehicles = [...page.items];
  while (page.next_cursor) {
    page = await api(`/v1/vehicles?limit=${PAGE}&cursor=${encodeURIComponent(page.next_cursor)}`);
    vehicles.push(...page.items);
  }
  return { vehicles, asOfMs: page.as_of_ms };
}

function vehiclesTable({ vehicles, asOfMs }) {
  return dataTable({
    id: "vehicles-admin-table",
    caption: `${f.count(vehicles.length, "vehicle")} as of ${f.time(asOfMs)} (a vehicle registered now is listed at the fleet view's next refresh, within about 10 s: open this section again)`,
    columns: [
      { title: "Vehicle", row: true, cell: (v) => h("a", { href: `#/vehicles/${encodeURIComponent(v.vehicle_id)}` }, v.vehicle_id) },
      { title: "Label", cell: (v) => v.label ?? "none (its id is shown)" },
      { title: "Connection", cell: (v) => (v.online === null ? "no status yet" : v.online ? "online" : "offline") },
      { title: "Driver now", cell: (v) => v.driver_id ?? "nobody" },
      { title: "Assignments", cell: (v) => h("a", { href: `#/admin/assignments/vehicle/${encodeURIComponent(v.vehicle_id)}` },
        `Assignments of ${v.vehicle_id}`) },
    ],
    rows: vehicles,
    empty: "The fleet has no vehicles yet: register one below (a vehicle that sends data is registered by itself).",
    csv: "/v1/vehicles",
    file: "vehicles.csv",
  });
}

function classesTable(classes, kinds) {
  const levels = Object.keys(classes[0]?.thresholds_g ?? {});
  return dataTable({
    id: "vehicle-classes-table",
    caption: "The vehicle classes: the level (g) at which each kind of event starts",
    columns: [
      { title: "Class", row: true, cell: (c) => `${c.name}${c.default ? " (default)" : ""}` },
      ...levels.map((kind) => ({ title: labelOf(kinds, kind), numeric: true, cell: (c) => f.g(c.thresholds_g[kind]) })),
      { title: "Shortest harsh event", numeric: true, cell: (c) => f.milliseconds(c.min_duration_ms) },
    ],
    rows: classes,
    empty: "The API lists no vehicle classes: check that the service is up to date.",
    csv: "/v1/vehicle-classes",
    file: "vehicle-classes.csv",
  });
}

function vehicleField() {
  return field("Vehicle id", h("input", { name: "vehicle_id", required: true, autocomplete: "off", list: VEHICLES_LIST }));
}

function forms(classes, { onUnauthorized, reload }) {
  const register = actionForm({
    id: "register-vehicle", title: "Register a vehicle", submit: "Register", onUnauthorized,
    fields: [vehicleField(), field("Label (optional)", h("input", { name: "label", maxlength: 200, autocomplete: "off" }),
      "what operators call it, e.g. its plate")],
    send: async (form) => {
      const v = values(form);
      const made = await api("/v1/vehicles", { method: "POST", body: { vehicle_id: v.vehicle_id.trim(), label: optional(v.label) } });
      form.reset();
      reload();
      return `Registered ${made.vehicle_id}.`;
    },
  });
  const relabel = actionForm({
    id: "relabel-vehicle", title: "Relabel a vehicle", submit: "Save the label", onUnauthorized,
    fields: [vehicleField(), field("New label (empty: none)", h("input", { name: "label", maxlength: 200, autocomplete: "off" }))],
    send: async (form) => {
      const v = values(form);
      const id = encodeURIComponent(v.vehicle_id.trim());
      const saved = await api(`/v1/vehicles/${id}`, { method: "PATCH", body: { label: optional(v.label) } });
      return `${saved.vehicle_id} is now labelled ${saved.label ?? "with nothing (its id)"}.`;
    },
  });
  const options = classes.map((c) => [c.name, `${c.name}${c.default ? " (the default)" : ""}`]);
  const setClass = actionForm({
    id: "set-vehicle-class", title: "Set a vehicle's class", submit: "Set the class", onUnauthorized,
    fields: [vehicleField(), field("Class", select("vehicle_class", options, { required: true }),
      "its events' thresholds: the table above")],
    send: async (form) => {
      const v = values(form);
      const id = encodeURIComponent(v.vehicle_id.trim());
      const saved = await api(`/v1/vehicles/${id}/class`, { method: "PUT", body: { vehicle_class: v.vehicle_class } });
      return `${saved.vehicle_id} is a ${saved.vehicle_class} from now on (events already found keep their class's thresholds).`;
    },
  });
  return [register, relabel, setClass];
}

export function renderVehiclesAdmin(box, { onUnauthorized, isStopped }) {
  const list = h("div", {});
  const catalogue = h("div", {});
  const formsBox = h("div", { class: "admin-forms" });
  const ids = h("datalist", { id: VEHICLES_LIST });
  const reload = () => loadInto(list, { what: "the vehicles", read: everyVehicle, onUnauthorized, isStopped,
    render: (found) => {
      show(ids, found.vehicles.map((v) => h("option", { value: v.vehicle_id })));
      return vehiclesTable(found);
    } });
  show(box, h("h2", {}, "Vehicles"), list, h("h2", {}, "Classes"), catalogue, formsBox, ids);
  reload();
  loadInto(catalogue, { what: "the vehicle classes", onUnauthorized, isStopped,
    read: () => Promise.all([vehicleClasses(), eventKinds()]),
    render: ([classes, kinds]) => {
      show(formsBox, forms(classes, { onUnauthorized, reload }));
      return classesTable(classes, kinds);
    } });
}
