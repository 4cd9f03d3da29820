// The portal's only way to Payymo: the public /api/v1, as any customer's portal would call it.
//
// The access token lives in this module's memory and nowhere else. The refresh token is an
// HttpOnly, SameSite=Strict cookie scoped to /api/v1/auth, which script cannot read; a reload
// or an expired access token is answered by one refresh, shared by every caller waiting on it.

const BASE = "/api/v1";

let session = null; // { access_token, expires_at (ms), tenant_id, user_id, role }
let refreshing = null;

/** A refused call: `message` is the problem's `detail`, in words. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `The request failed (HTTP ${status}).`);
    this.status = status;
    this.problem = problem;
    this.errors = problem.errors || [];
  }
}

async function problemOf(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `The server answered ${response.status} ${response.statusText}.` };
  }
  return new ApiError(response.status, problem);
}

function remember(body) {
  session = {
    access_token: body.access_token,
    expires_at: Date.now() + body.expires_in * 1000,
    tenant_id: body.tenant_id,
    user_id: body.user_id,
    role: body.role,
  };
  return session;
}

async function post(path, body) {
  return fetch(BASE + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

/** Signs in; the refresh token goes into its cookie. */
export async function signIn(email, password, tenantId) {
  const body = { email, password, refresh_token_in: "cookie" };
  if (tenantId) body.tenant_id = tenantId;
  const response = await post("/auth/login", body);
  if (!response.ok) throw await problemOf(response);
  return remember(await response.json());
}

/**
 * Runs `send` while no other tab of this browser refreshes. Tabs share the cookie, and a
 * refresh token works once: two tabs refreshing together would present the same token twice,
 * which the API takes for theft and answers by ending the session. In turn, each tab sends the
 * cookie the previous one left.
 */
function oneTabAtATime(send) {
  return navigator.locks ? navigator.locks.request("payymo-refresh", send) : send();
}

/** Renews the session from the cookie (into another tenant with `tenantId`). One at a time. */
export function refresh(tenantId) {
  if (refreshing && !tenantId) return refreshing;
  const attempt = (async () => {
    const response = await oneTabAtATime(() => post("/auth/refresh", tenantId ? { tenant_id: tenantId } : {}));
    if (!response.ok) {
      if (response.status === 401) session = null;
      throw await problemOf(response);
    }
    return remember(await response.json());
  })();
  refreshing = attempt;
  attempt.then(
    () => {},
    () => {},
  ).finally(() => {
    if (refreshing === attempt) refreshing = null;
  });
  return attempt;
}

export async function signOut() {
  session = null;
  await post("/auth/logout", {}).catch(() => {});
}

export function current() {
  return session;
}

function url(path, query) {
  const target = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(key, value);
  }
  return target;
}

/**
 * Calls the API as the signed-in user. `body` is sent as JSON; a POST carries an
 * Idempotency-Key so that a retry never does the thing twice. `raw` returns the response
 * itself (a CSV download).
 */
export async function api(method, path, { query, body, raw, contentType } = {}) {
  if (!session || session.expires_at - Date.now() < 20_000) await refresh();
  const send = () => {
    const headers = { Authorization: `Bearer ${session.access_token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
    if (method === "POST") headers["Idempotency-Key"] = crypto.randomUUID();
    return fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let response = await send();
  if (response.status === 401) {
    await refresh();
    response = await send();
  }
  if (!response.ok) throw await problemOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, query) => api("GET", path, { query });
