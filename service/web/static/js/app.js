// The shell: who is logged in, the hash router (#/fleet, ...), and the way back to the login form when a
// session ends. Each page is a module whose render(main, session) returns its cleanup (timers, the live feed).

import { api, ApiError, setCsrfToken } from "./api.js";
import { h, show } from "./dom.js";
import { zone } from "./format.js";
import { renderLogin } from "./login.js";
import { renderFleet } from "./fleet.js";
import { renderEvent } from "./event.js";
import { renderQueue } from "./queue.js";

// #/<page>/<params>: the params are the rest of the hash, decoded (an event's key holds slashes).
const PAGES = new Map([
  ["fleet", { title: "Fleet now", render: renderFleet }],
  ["events", { title: "Event", render: renderEvent }],
  ["reviews", { title: "Review queue", render: renderQueue }],
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

function start(me) {
  session = me;
  setCsrfToken(me.csrf_token);
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
  const name = first || HOME;
  const params = rest.map(decoded).join("/");
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
