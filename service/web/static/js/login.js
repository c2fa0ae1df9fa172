// The login form: POST /v1/auth/login as JSON; the answer's CSRF token is kept in memory (api.js), the session
// cookie by the browser (HttpOnly: this code never sees it).

import { api, ApiError } from "./api.js";
import { h, show } from "./dom.js";

export function renderLogin(main, { message, onLoggedIn }) {
  // `message` says why the form is back (logged out, the session ended); `error` why a try failed.
  const note = message ? h("p", { class: "status", role: "status" }, message) : null;
  const error = h("p", { id: "login-error", class: "error", role: "alert" });
  const username = h("input", { name: "username", autocomplete: "username", required: true, maxlength: 64 });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h(
    "form",
    { class: "login", "aria-describedby": "login-error" },
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      const me = await api("/v1/auth/login", {
        method: "POST",
        body: { username: username.value, password: password.value },
      });
      onLoggedIn(me);
    } catch (failure) {
      const retry = failure instanceof ApiError && failure.status === 429 ? " Wait, then try again." : "";
      error.textContent = failure.message + retry;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  show(main, h("h1", {}, "Log in"), note, error, form);
  username.focus();
}
