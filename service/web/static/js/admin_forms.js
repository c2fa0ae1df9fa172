// What every admin section's forms and lists share: a labelled field, a form that sends through api.js and shows the
// API's refusal in its own words next to itself (role=alert), a list read with a "try again", and a secret shown once.

import { ApiError } from "./api.js";
import { h, show } from "./dom.js";

const SESSION_ENDED = "Your session has ended: log in again.";

// A label for its control (by id: the hint stays out of the control's name) and an optional hint that describes it.
let fieldCount = 0;
export function field(text, control, hint = null) {
  control.id ||= `field-${++fieldCount}`;
  const parts = [h("label", { for: control.id }, text), control];
  if (hint !== null) {
    control.setAttribute("aria-describedby", `${control.id}-hint`);
    parts.push(h("span", { class: "hint", id: `${control.id}-hint` }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, { value = null, required = false } = {}) {
  return h("select", { name, required },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

// The sentence a failed call shows: the API's own detail (api.js carries it), or the session's end handed up.
export function refusal(error, onUnauthorized) {
  if (error instanceof ApiError && error.status === 401) {
    onUnauthorized(SESSION_ENDED);
    return null;
  }
  return error.message;
}

// <form> with a title, its fields, a submit button, and two lines under it: a polite status and an alert for the
// API's refusal. `send(form)` does the call and answers the sentence to show on success (or null).
export function actionForm({ id, title, fields, submit, send, onUnauthorized, classes = "admin-form" }) {
  const status = h("p", { class: "status", role: "status" });
  const alert = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, submit);
  const form = h("form", { id, class: classes, "aria-label": title },
    h("h3", {}, title), fields, h("div", { class: "actions" }, button), status, alert);
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return; // one call at a time; aria-disabled, not disabled: a disabled button would drop the focus
    busy = true;
    button.setAttribute("aria-disabled", "true");
    alert.textContent = "";
    status.textContent = "Sending…";
    try {
      status.textContent = (await send(form)) ?? "Done.";
    } catch (error) {
      status.textContent = "";
      const said = refusal(error, onUnauthorized);
      if (said !== null) alert.textContent = `Refused: ${said}`;
    } finally {
      busy = false;
      button.removeAttribute("aria-disabled");
    }
  });
  return form;
}

// A button doing one call (revoke, delete, rotate...), its refusal said in `alert` (a role=alert line near it).
export function actionButton(text, { label = null, alert, onUnauthorized, run }) {
  const button = h("button", { type: "button", "aria-label": label }, text);
  let busy = false;
  button.addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    button.setAttribute("aria-disabled", "true");
    alert.textContent = "";
    try {
      await run();
    } catch (error) {
      const said = refusal(error, onUnauthorized);
      if (said !== null) {
        alert.textContent = `Refused: ${said}`;
        alert.setAttribute("tabindex", "-1");
        alert.focus(); // the list may have been redrawn under the button: the refusal is where the focus goes
      }
    } finally {
      busy = false;
      button.removeAttribute("aria-disabled");
    }
  });
  return button;
}

// Reads a list into `box`: "Reading…", then `render(data)`, or what failed with a button to try again.
export async function loadInto(box, { what, read, render, onUnauthorized, isStopped = () => false }) {
  show(box, h("p", { class: "status" }, `Reading ${what}…`));
  try {
    const data = await read();
    if (!isStopped()) show(box, render(data));
  } catch (error) {
    if (isStopped()) return;
    const said = refusal(error, onUnauthorized);
    if (said === null) return;
    const retry = h("button", { type: "button" }, "Try again");
    retry.addEventListener("click", () => loadInto(box, { what, read, render, onUnauthorized, isStopped }));
    show(box, h("p", { class: "error", role: "alert" }, `${what[0].toUpperCase()}${what.slice(1)} could not be read: ${said}. `), retry);
  }
}

// A secret the API answers once (a token, a password, a webhook's signing secret): shown in a box that says so and
// how to use it, with a button that copies it. It is gone from the page once the page is left.
export function secretOnce({ title, secret, how }) {
  const copied = h("span", { class: "status", role: "status" });
  const copy = h("button", { type: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = " Copied.";
    } catch {
      copied.textContent = " Copying is not allowed here: select the text and copy it yourself.";
    }
  });
  const box = h("section", { class: "secret-once", "aria-label": title, tabindex: "-1" },
    h("h3", {}, title),
    h("p", {}, h("strong", {}, "Shown this once: copy it now. "), "Leaving this page loses it; nobody can read it again."),
    h("p", {}, h("code", { class: "secret" }, secret), " ", copy, copied),
    h("p", {}, how));
  return box;
}

// A line saying what a change did, focused: the list it came from is redrawn, so the button pressed is gone.
export function said(line, text) {
  line.textContent = text ?? "";
  if (text) {
    line.setAttribute("tabindex", "-1");
    line.focus();
  }
}

// Shows `node` in `slot` and moves focus there, so a keyboard user hears the new secret or form at once.
export function reveal(slot, node) {
  show(slot, node);
  node.focus?.();
}

export function values(form) {
  return Object.fromEntries(new FormData(form));
}

// An optional text field: "" means "none" (null), as the API takes it.
export function optional(text) {
  const trimmed = (text ?? "").trim();
  return trimmed === "" ? null : trimmed;
}
