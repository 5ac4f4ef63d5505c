// The REST API under /api/v1, with the session cookie. Errors become ApiError with the server's
// code and message; a 401 on any call but the login also tells the app the session is over.

const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** Listeners called when a request answers 401 (the session expired or was ended elsewhere). */
const unauthorizedListeners = new Set();
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

/**
 * Calls `method path` with an optional JSON `body`; resolves to the parsed JSON answer (null for
 * 204). `quiet401`: a 401 is only an error for the caller (the login form, the first `me`).
 */
export async function request(method, path, body, { quiet401 = false } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { accept: "application/json" },
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text().catch(() => "");
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" && data.error ? data.error : {};
    const retry = Number.parseInt(response.headers.get("retry-after") || "", 10);
    const error = new ApiError(
      response.status,
      typeof detail.code === "string" ? detail.code : "http_" + response.status,
      typeof detail.message === "string" && detail.message
        ? detail.message
        : `The server answered ${response.status}.`,
      Number.isFinite(retry) ? retry : null,
    );
    if (response.status === 401 && !quiet401) {
      for (const listener of unauthorizedListeners) {
        try {
          listener(error);
        } catch (e) {
          console.error(e);
        }
      }
    }
    throw error;
  }
  return data;
}

export const api = {
  get: (path, options) => request("GET", path, undefined, options),
  post: (path, body, options) => request("POST", path, body, options),
  put: (path, body, options) => request("PUT", path, body, options),
  patch: (path, body, options) => request("PATCH", path, body, options),
};

/** A query string from an object, skipping null, undefined, false and "". */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === false || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Customers are looked up often (conversation list, call panel, timeline): one request per id
// per few minutes, shared by everyone who asks at the same time.
const customerCache = new Map();
const CUSTOMER_TTL_MS = 120_000;

/** The customer with identities (GET /customers/{id}), cached briefly. */
export function getCustomer(id, { fresh = false } = {}) {
  const key = String(id);
  const hit = customerCache.get(key);
  if (hit && !fresh && Date.now() - hit.at < CUSTOMER_TTL_MS) return hit.promise;
  const promise = api.get(`/customers/${encodeURIComponent(key)}`);
  customerCache.set(key, { at: Date.now(), promise });
  promise.catch(() => customerCache.delete(key));
  return promise;
}

/** Forgets cached customers (after logout). */
export function clearCaches() {
  customerCache.clear();
  usersPromise = null;
}

let usersPromise = null;

/**
 * The company's users by id (GET /users), for names of note authors and assignees. Resolves to
 * an empty map when the role may not list users.
 */
export function getUsers() {
  if (!usersPromise) {
    usersPromise = api
      .get("/users")
      .then((list) => new Map((Array.isArray(list) ? list : []).map((u) => [Number(u.id), u])))
      .catch(() => {
        usersPromise = null;
        return new Map();
      });
  }
  return usersPromise;
}

/** The customer's name, or their first phone number, or a placeholder. */
export function customerLabel(customer) {
  if (!customer) return "Unknown customer";
  if (customer.display_name) return customer.display_name;
  const identities = Array.isArray(customer.identities) ? customer.identities : [];
  const named = identities.find((i) => i && i.display_name);
  if (named) return named.display_name;
  const phone = identities.find((i) => i && i.kind === "phone");
  if (phone) return phone.external_id;
  return `Customer #${customer.id}`;
}
