// Admin: users and their API tokens (#/admin/users, #/admin/users/<username> for one user's tokens). GET/POST/PATCH
// /v1/users, GET/POST/DELETE /v1/users/{username}/tokens. A generated password and a new token are shown once.

import { api } from "./api.js";
import { h, show } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./table.js";
import { actionButton, actionForm, field, loadInto, optional, reveal, said, secretOnce, select, values } from "./admin_forms.js";
import { ROLES } from "./roles.js";


function since(ms) {
  return h("time", { datetime: f.isoAttr(ms) }, f.time(ms));
}

function msOf(iso) {
  return iso === null || iso === undefined ? null : Date.parse(iso);
}

function usersTable(users, { session, alert, onUnauthorized, reload }) {
  const roleCell = (u) => {
    const choice = select("role", ROLES.map(([v]) => [v, v]), { value: u.role });
    choice.setAttribute("aria-label", `Role of ${u.username}`);
    const save = actionButton("Set role", { label: `Set role of ${u.username}`, alert, onUnauthorized, run: async () => {
      await api(`/v1/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { role: choice.value } });
      await reload(`${u.username} is now a ${choice.value}.`);
    } });
    return h("span", { class: "inline" }, choice, save);
  };
  const standing = (u) => {
    const toggle = actionButton(u.disabled ? "Enable" : "Disable", {
      label: `${u.disabled ? "Enable" : "Disable"} ${u.username}`, alert, onUnauthorized, run: async () => {
        await api(`/v1/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { disabled: !u.disabled } });
        await reload(`${u.username} is ${u.disabled ? "enabled" : "disabled: their sessions and tokens stopped working"}.`);
      } });
    const state = u.disabled ? ["disabled since ", since(msOf(u.disabled_at))] : ["active"];
    return h("span", { class: "inline" }, h("span", {}, ...state), toggle);
  };
  return dataTable({
    id: "users-table",
    caption: `${f.count(users.length, "user")}; you are ${session.username}`,
    columns: [
      { title: "Username", row: true, cell: (u) => u.username },
      { title: "Role", cell: roleCell },
      { title: "Created", cell: (u) => since(msOf(u.created_at)) },
      { title: "Standing", cell: standing },
      { title: "Tokens", cell: (u) => h("a", { href: `#/admin/users/${encodeURIComponent(u.username)}` }, `Tokens of ${u.username}`) },
    ],
    rows: users,
    empty: "No users yet: add one below.",
    csv: "/v1/users",
    file: "users.csv",
  });
}

function addUserForm({ onUnauthorized, once, reload }) {
  const fields = [
    field("Username", h("input", { name: "username", required: true, autocomplete: "off", maxlength: 64 }),
      "letters, digits, dot, dash or underscore"),
    field("Role", select("role", ROLES, { value: "viewer", required: true })),
    field("Password (optional)", h("input", { name: "password", type: "password", autocomplete: "new-password" }),
      "leave empty and one is generated and shown once"),
  ];
  return actionForm({
    id: "add-user", title: "Add a user", fields, submit: "Add the user", onUnauthorized,
    send: async (form) => {
      const v = values(form);
      const made = await api("/v1/users", { method: "POST", body: { username: v.username.trim(), role: v.role, password: optional(v.password) } });
      form.reset();
      if (made.password) {
        once(secretOnce({ title: `The password of ${made.username}`, secret: made.password,
          how: "Give it to them by a safe channel; they log in with it and should change it at once (POST /v1/auth/password)." }));
      }
      await reload(null);
      return `Added ${made.username} (${made.role}).`;
    },
  });
}

function tokensPanel(box, username, { onUnauthorized, isStopped }) {
  const path = `/v1/users/${encodeURIComponent(username)}/tokens`;
  const list = h("div", {});
  const alert = h("p", { class: "error", role: "alert" });
  const once = h("div", {});
  const status = h("p", { class: "status", role: "status" });
  const reload = () => loadInto(list, { what: `the tokens of ${username}`, read: () => api(path), onUnauthorized, isStopped,
    render: (tokens) => dataTable({
      id: "tokens-table",
      caption: `${f.count(tokens.length, "token")} of ${username} (their secrets are never shown again)`,
      columns: [
        { title: "Name", row: true, cell: (t) => t.name },
        { title: "Created", cell: (t) => since(msOf(t.created_at)) },
        { title: "State", cell: (t) => (t.revoked ? ["revoked ", since(msOf(t.revoked_at))] : "works") },
        { title: "Revoke", cell: (t) => (t.revoked ? "–" : actionButton("Revoke", { label: `Revoke the token ${t.name}`, alert, onUnauthorized,
          run: async () => {
            await api(`${path}/${encodeURIComponent(t.token_id)}`, { method: "DELETE" });
            await reload();
            said(status, `Revoked the token "${t.name}": it stopped working.`);
          } })) },
      ],
      rows: tokens,
      empty: `${username} has no API tokens. Create one below for a program that reads the API as them.`,
      csv: path,
      file: `tokens-${username}.csv`,
    }) });
  const form = actionForm({
    id: "create-token", title: `Create a token for ${username}`, onUnauthorized, submit: "Create the token",
    fields: [field("What the token is for", h("input", { name: "name", required: true, maxlength: 100, autocomplete: "off" }),
      "e.g. the nightly export; it carries this user's role")],
    send: async (sent) => {
      const made = await api(path, { method: "POST", body: { name: values(sent).name } });
      sent.reset();
      reveal(once, secretOnce({ title: `The token "${made.name}" of ${username}`, secret: made.token,
        how: h("span", {}, "A program sends it on every request as ", h("code", {}, `Authorization: Bearer ${made.token.slice(0, 8)}…`),
          ". It works until it is revoked here or the user is disabled.") }));
      await reload();
      return `Created the token "${made.name}".`;
    },
  });
  show(box, h("h2", {}, `Tokens of ${username}`), h("p", {}, h("a", { href: "#/admin/users" }, "Back to every user")),
    once, list, status, alert, form);
  reload();
}

export function renderUsersAdmin(box, { session, params, onUnauthorized, isStopped }) {
  if (params) return tokensPanel(box, params, { onUnauthorized, isStopped });
  const list = h("div", {});
  const alert = h("p", { class: "error", role: "alert" });
  const status = h("p", { class: "status", role: "status" });
  const once = h("div", {});
  const reload = async (done) => {
    await loadInto(list, { what: "the users", read: () => api("/v1/users"), onUnauthorized, isStopped,
      render: (users) => usersTable(users, { session, alert, onUnauthorized, reload }) });
    if (done) said(status, done);
  };
  show(box, h("h2", {}, "Users"), once, list, status, alert,
    addUserForm({ onUnauthorized, once: (node) => reveal(once, node), reload }));
  reload(null);
}
