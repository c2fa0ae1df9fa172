// Admin: webhooks (#/admin/webhooks, #/admin/webhooks/<id> for one and its delivery log). GET/POST/PATCH/DELETE
// /v1/webhooks, POST .../secret (rotate), POST .../test, GET .../deliveries?day=. A signing secret is shown once.

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { eventKinds, labelOf } from "./catalog.js";
import { actionForm, field, loadInto, reveal, secretOnce, values } from "./admin_forms.js";

function kindsText(keys, kinds) {
  return keys.length === 0 ? "every kind" : keys.map((k) => labelOf(kinds, k)).join(", ");
}

function at(ms) {
  return ms === null || ms === undefined ? "–" : h("time", { datetime: f.isoAttr(ms) }, f.time(ms));
}

function kindChoices(kinds, chosen = []) {
  return h("fieldset", { class: "kinds" },
    h("legend", {}, "Event kinds (none ticked: every kind)"),
    kinds.map((k) => h("label", { class: "choice" },
      h("input", { type: "checkbox", name: "kinds", value: k.key, checked: chosen.includes(k.key) }), ` ${k.label}`)));
}

function chosenKinds(form) {
  return new FormData(form).getAll("kinds");
}

function signingHow(secret) {
  return h("span", {}, "Every delivery is signed with it: the receiver computes HMAC-SHA256 under this secret of ",
    h("code", {}, "<X-Fleetsense-Timestamp>.<body>"), " and compares it, in hex, with ",
    h("code", {}, "X-Fleetsense-Signature: v1=<hex>"), "; it refuses a timestamp older than 5 minutes. Keep it with the",
    ` receiver only (it starts ${secret.slice(0, 8)}…).`);
}

function webhooksTable(hooks, kinds) {
  return dataTable({
    id: "webhooks-table",
    caption: `${f.count(hooks.length, "webhook")}, ${hooks.filter((w) => w.enabled).length} enabled`,
    columns: [
      { title: "URL", row: true, cell: (w) => h("a", { href: `#/admin/webhooks/${encodeURIComponent(w.id)}`, "aria-label": `Open the webhook to ${w.url}` }, w.url) },
      { title: "Kinds", cell: (w) => kindsText(w.kinds, kinds) },
      { title: "State", cell: (w) => (w.enabled ? "enabled" : ["disabled ", at(w.disabled_at_ms)]) },
      { title: "Created", cell: (w) => [at(w.created_at_ms), ` by ${w.created_by}`] },
    ],
    rows: hooks,
    empty: "No webhooks yet: add one below to have harsh events POSTed to your system as they happen.",
    csv: "/v1/webhooks",
    file: "webhooks.csv",
  });
}

function createForm(kinds, { once, onUnauthorized, reload }) {
  return actionForm({
    id: "add-webhook", title: "Add a webhook", submit: "Add the webhook", onUnauthorized,
    fields: [field("URL", h("input", { name: "url", type: "url", required: true, maxlength: 2000, autocomplete: "off" }),
      "http(s); each event is POSTed to it as JSON. Link-local addresses (cloud metadata) are refused"), kindChoices(kinds)],
    send: async (form) => {
      const made = await api("/v1/webhooks", { method: "POST", body: { url: values(form).url.trim(), kinds: chosenKinds(form) } });
      form.reset();
      once(secretOnce({ title: `The signing secret of the webhook to ${made.url}`, secret: made.secret, how: signingHow(made.secret) }));
      await reload();
      return `Added the webhook to ${made.url}.`;
    },
  });
}

function deliveriesView(id, { onUnauthorized, isStopped }) {
  const list = h("div", {});
  const today = new Date().toISOString().slice(0, 10); // the log is kept per UTC day
  const day = h("input", { type: "date", name: "day", value: today, required: true });
  const read = () => {
    const query = `/v1/webhooks/${encodeURIComponent(id)}/deliveries?day=${day.value || today}`;
    return loadInto(list, { what: "the delivery log", onUnauthorized, isStopped, read: () => api(query),
      render: (attempts) => dataTable({
        id: "deliveries-table",
        caption: `${f.count(attempts.length, "attempt")} on ${day.value || today} (UTC), newest first`,
        columns: [
          { title: "Attempted", row: true, cell: (a) => at(a.attempted_at_ms) },
          { title: "Event", cell: (a) => a.event_key },
          { title: "Attempt no.", numeric: true, cell: (a) => String(a.attempt) },
          { title: "Answer", cell: (a) => (a.status_code === null ? `no answer: ${a.error ?? "unknown"}` : `HTTP ${a.status_code}${a.error ? `: ${a.error}` : ""}`) },
          { title: "Took", numeric: true, cell: (a) => f.milliseconds(a.duration_ms) },
          { title: "Delivered", cell: (a) => (a.delivered ? "yes" : "no") },
        ],
        rows: attempts,
        empty: "No delivery attempts that day: pick another day, or send a test above.",
        csv: query,
        file: `deliveries-${id}-${day.value || today}.csv`,
      }) });
  };
  const form = h("form", { class: "admin-form inline-form", "aria-label": "Delivery log day" },
    field("Day (UTC)", day), h("div", { class: "actions" }, h("button", { type: "submit" }, "Show the log")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    read();
  });
  read();
  return h("section", { "aria-label": "Delivery log" }, h("h3", {}, "Delivery log"), form, list);
}

function detail(hook, kinds, said, { onUnauthorized, isStopped, reloadOne }) {
  const base = `/v1/webhooks/${encodeURIComponent(hook.id)}`;
  const once = h("div", {});
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: hook.enabled });
  const change = actionForm({
    id: "change-webhook", title: "Change it", submit: "Save the changes", onUnauthorized,
    fields: [field("URL", h("input", { name: "url", type: "url", required: true, value: hook.url, maxlength: 2000 })),
      kindChoices(kinds, hook.kinds), h("label", { class: "choice" }, enabled, " Enabled (cleared: nothing is sent)")],
    send: async (form) => {
      const saved = await api(base, { method: "PATCH",
        body: { url: values(form).url.trim(), kinds: chosenKinds(form), enabled: enabled.checked } });
      await reloadOne(saved, "Saved the webhook's changes.");
      return null;
    },
  });
  const rotate = actionForm({
    id: "rotate-secret", title: "Rotate its secret", submit: "Make a new secret", onUnauthorized,
    fields: [h("p", { class: "hint" }, "The old secret stops working at once: give the new one to the receiver first.")],
    send: async () => {
      const made = await api(`${base}/secret`, { method: "POST" });
      reveal(once, secretOnce({ title: "The new signing secret", secret: made.secret, how: signingHow(made.secret) }));
      return "A new secret is in use (shown above, once).";
    },
  });
  const test = actionForm({
    id: "test-webhook", title: "Send a test", submit: "Send a test event", onUnauthorized,
    fields: [h("p", { class: "hint" }, "One event of kind \"test\", now, without retries; the attempt joins the log.")],
    send: async () => {
      const a = await api(`${base}/test`, { method: "POST" });
      const answer = a.status_code === null ? `no answer (${a.error})` : `HTTP ${a.status_code}${a.error ? ` (${a.error})` : ""}`;
      return `${a.delivered ? "Delivered" : "Not delivered"}: ${answer} in ${f.milliseconds(a.duration_ms)}.`;
    },
  });
  const remove = actionForm({
    id: "delete-webhook", title: "Delete it", submit: "Delete the webhook", onUnauthorized,
    fields: [h("label", { class: "choice" }, h("input", { type: "checkbox", name: "sure", required: true }),
      " Yes: stop sending and forget it (its log ages out in 30 days)")],
    send: async () => {
      await api(base, { method: "DELETE" });
      location.hash = "#/admin/webhooks";
      return "Deleted.";
    },
  });
  return [
    h("h2", {}, `Webhook to ${hook.url}`),
    h("p", {}, h("a", { href: "#/admin/webhooks" }, "Back to every webhook")),
    said ? h("p", { class: "status", role: "status", tabindex: "-1", id: "webhook-said" }, said) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Sends"), h("dd", {}, kindsText(hook.kinds, kinds)),
      h("dt", {}, "State"), h("dd", {}, hook.enabled ? "enabled" : ["disabled ", at(hook.disabled_at_ms)]),
      h("dt", {}, "Created"), h("dd", {}, at(hook.created_at_ms), ` by ${hook.created_by}`)),
    once,
    h("div", { class: "admin-forms" }, change, rotate, test, remove),
    deliveriesView(hook.id, { onUnauthorized, isStopped }),
  ];
}

export function renderWebhooksAdmin(box, { params, onUnauthorized, isStopped }) {
  if (params) {
    const reloadOne = async (hook, said = null) => {
      await loadInto(box, { what: "the webhook", onUnauthorized, isStopped,
        read: async () => [hook ?? await api(`/v1/webhooks/${encodeURIComponent(params)}`), await eventKinds()],
        render: ([found, kinds]) => detail(found, kinds, said, { onUnauthorized, isStopped, reloadOne }) });
      box.querySelector("#webhook-said")?.focus();
    };
    reloadOne(null);
    return;
  }
  const list = h("div", {});
  const once = h("div", {});
  const formBox = h("div", {});
  const reload = () => loadInto(list, { what: "the webhooks", onUnauthorized, isStopped,
    read: () => Promise.all([api("/v1/webhooks"), eventKinds()]),
    render: ([hooks, kinds]) => {
      if (!formBox.firstChild) show(formBox, createForm(kinds, { once: (node) => reveal(once, node), onUnauthorized, reload }));
      return webhooksTable(hooks, kinds);
    } });
  show(box, h("h2", {}, "Webhooks"), once, list, formBox);
  reload();
}
