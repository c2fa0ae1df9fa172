// Every call to the API goes through here: same origin, the session cookie, the CSRF token on changes, a timeout
// (nothing waits for ever), and the API's own sentence when it refuses.

const TIMEOUT_MS = 15000;
const CHANGES = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let csrfToken = null; // in memory only: after a reload, GET /v1/auth/me gives it again

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function setCsrfToken(token) {
  csrfToken = token;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`;
}

export async function api(path, { method = "GET", body, timeoutMs = TIMEOUT_MS } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (CHANGES.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const what = error.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : "the server is unreachable";
    throw new ApiError(0, `${what}: check that fleetsense serve is running, then try again`);
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  if (response.status === 204) return null;
  return response.json();
}
