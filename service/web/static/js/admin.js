// Admin (#/admin/<section>/<what>): drivers, assignments, vehicles and their classes, webhooks, users and tokens. One
// module per section; this page is their navigation (plain links: Tab and Enter reach every section, and a section's
// URL can be shared or reloaded). Only an admin opens it (app.js); the API refuses anyone else's changes anyway.

import { h, show } from "./dom.js";
import { renderDriversAdmin } from "./admin_drivers.js";
import { renderAssignmentsAdmin } from "./admin_assignments.js";
import { renderVehiclesAdmin } from "./admin_vehicles.js";
import { renderWebhooksAdmin } from "./admin_webhooks.js";
import { renderUsersAdmin } from "./admin_users.js";

const SECTIONS = new Map([
  ["users", { title: "Users and tokens", render: renderUsersAdmin }],
  ["drivers", { title: "Drivers", render: renderDriversAdmin }],
  ["assignments", { title: "Assignments", render: renderAssignmentsAdmin }],
  ["vehicles", { title: "Vehicles and classes", render: renderVehiclesAdmin }],
  ["webhooks", { title: "Webhooks", render: renderWebhooksAdmin }],
]);
const FIRST = "users"; // the one section that needs no database: the accounts are the API's own

export function renderAdmin(main, { session, params, onUnauthorized }) {
  const [name = "", ...rest] = params.split("/");
  const current = name || FIRST;
  const section = SECTIONS.get(current);
  const links = [...SECTIONS].map(([key, s]) =>
    h("li", {}, h("a", { href: `#/admin/${key}`, "aria-current": key === current ? "page" : null }, s.title)));
  const body = h("div", { class: "admin-section" });
  show(main, h("h1", {}, section ? `Admin: ${section.title}` : "Admin"),
    h("nav", { class: "admin-nav", "aria-label": "Admin sections" }, h("ul", {}, links)), body);
  if (section === undefined) {
    show(body, h("p", { class: "error", role: "alert" }, `There is no admin section "${name}": choose one above.`));
    return () => {};
  }
  document.title = `Admin: ${section.title} · fleetsense`;
  let stopped = false;
  section.render(body, { session, params: rest.join("/"), onUnauthorized, isStopped: () => stopped });
  return () => {
    stopped = true;
  };
}
