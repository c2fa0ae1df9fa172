// The shell: who is logged in, the hash router (#/fleet, ...), and the way back to the login form when a
// session ends. Each page is a module whose render(main, session) returns its cleanup (timers, the live feed).

import { api, ApiError, setCsrfToken } from "./api.js";
import { h, show } from "./dom.js";
import { zone } from "./format.js";
import { renderLogin } from "./login.js";
import { renderFleet } from "./fleet.js";
import { renderEvent } from "./event.js";
import { renderQueue } from "./queue.js";
import { renderDrivers } from "./drivers.js";
import { renderVehicle } from "./vehicle.js";
import { renderTrip } from "./trip.js";
import { renderAdmin } from "./admin.js";
import { mayOpen } from "./roles.js";

// Every page, declared once: #/<name>/<params> (the params are the rest of the hash, decoded: an event's key holds
// slashes). `nav` puts it in the header's navigation; `least` is the least role that may open it (the API decides
// what each role may read or change; this only keeps a viewer from pages made of refusals). The order is the nav's.
const PAGES = new Map([
  ["fleet", { title: "Fleet now", render: renderFleet, nav: true, least: "viewer" }],
  ["drivers", { title: "Drivers", render: renderDrivers, nav: true, least: "viewer" }],
  ["reviews", { title: "Review queue", render: renderQueue, nav: true, least: "manager" }],
  ["admin", { title: "Admin", render: renderAdmin, nav: true, least: "admin" }],
  ["vehicles", { title: "Vehicle", render: renderVehicle, nav: false, least: "viewer" }],
  ["trips", { title: "Trip", render: renderTrip, nav: false, least: "viewer" }],
  ["events", { title: "Event", render: renderEvent, nav: false, least: "viewer" }],
]);
const HOME = "fleet";


const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");
let session = null;
let cleanup = () => {};

function leavePage() {
  cleanup();
  cleanup = () => {};
}

export function sessionEnded(message) {
  leavePage();
  session = null;
  setCsrfToken(null);
  nav.hidden = true;
  logoutButton.hidden = true;
  who.textContent = "";
  document.title = "Log in · fleetsense";
  renderLogin(main, { message, onLoggedIn: start });
}

function navigation(role) {
  const links = [...PAGES].filter(([, page]) => page.nav && mayOpen(role, page.least))
    .map(([name, page]) => h("a", { href: `#/${name}` }, page.title));
  show(nav, links);
}

function start(me) {
  session = me;
  setCsrfToken(me.csrf_token);
  navigation(me.role);
  nav.hidden = false;
  logoutButton.hidden = false;
  who.textContent = `${me.username} (${me.role})`;
  route();
}

function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a malformed %-escape: the page then says there is no such thing
  }
}

function route() {
  if (session === null) return;
  const [first, ...rest] = location.hash.replace(/^#\//, "").split("/");
  // #/drivers?period=week is #/drivers/?period=week: a query typed straight after the page's name is its params.
  const query = first.indexOf("?");
  const name = (query < 0 ? first : first.slice(0, query)) || HOME;
  const params = (query < 0 ? "" : first.slice(query)) + rest.map(decoded).join("/");
  const page = PAGES.get(name);
  leavePage();
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === undefined) {
    document.title = "No such page · fleetsense";
    show(main, h("h1", {}, "No such page"), h("p", {}, "Go to ", h("a", { href: `#/${HOME}` }, "Fleet now"), "."));
    return;
  }
  if (!mayOpen(session.role, page.least)) {
    document.title = `Not for your role · fleetsense`;
    show(main, h("h1", {}, page.title),
      h("p", { class: "error", role: "alert" }, `This page is for the ${page.least} role and above; you are logged in as a ${session.role}.`),
      h("p", {}, "Ask an admin for a role that may open it, or go to ", h("a", { href: `#/${HOME}` }, "Fleet now"), "."));
    main.focus();
    return;
  }
  document.title = `${page.title} · fleetsense`;
  cleanup = page.render(main, { session, params, onUnauthorized: sessionEnded }) || (() => {});
  main.focus();
}

async function logout() {
  try {
    await api("/v1/auth/logout", { method: "POST" });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      who.textContent = `Logging out failed: ${error.message}`;
      return;
    }
  }
  sessionEnded("You are logged out.");
}

async function boot() {
  document.getElementById("zone").textContent = `Times are shown in your time zone, ${zone}.`;
  logoutButton.addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try {
    start(await api("/v1/auth/me"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) sessionEnded(null);
    else show(main, h("h1", {}, "fleetsense"), h("p", { class: "error", role: "alert" }, error.message));
  }
}

boot();
